"""The path the Dagster UI's Materialize button takes: webserver + daemon on loopback, GraphQL, a real run, and
the asset graph as a person sees it in a browser."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.browser import DevToolsPage, keep_doc_image, region_stats
from tests.conftest import assert_video
from video_pipeline.config import PROJECT_ROOT, Settings
from video_pipeline.flow.intake import accept
from video_pipeline.providers.fakes.server import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STAGES = ["campaign", "prompt_batches", "narration_tracks", "routed_job_plans", "generated_segments", "stored_clips",
          "assembled_outputs", "campaign_report"]
GROUPS = {"campaign": "intake", "prompt_batches": "intake", "narration_tracks": "narration", "routed_job_plans": "planning",
          "generated_segments": "generation", "stored_clips": "storage", "assembled_outputs": "assembly",
          "campaign_report": "reporting"}


def _gql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def dagster_ui(data_dir: Path, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": os.environ["DAGSTER_HOME"], "PORT": str(port)}
    # as a person starts it: ./scripts/ui (dg dev: the webserver and the daemon), stopped by its process group
    # (SIGINT as a terminal has it: dagster dev maps SIGTERM to SIGINT's handler, which a background job inherits
    # as ignored)
    procs = [subprocess.Popen(["bash", "scripts/ui"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "webserver.log", "w"), start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("dagster-webserver did not answer: " + (tmp_path / "webserver.log").read_text()[-2000:])
        entry = {}
        while time.monotonic() < deadline:   # the code location loads after the server answers
            entry = _gql(url, """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                locationOrLoadError { __typename ... on PythonError { message } } } } } }""")[
                "workspaceOrError"]["locationEntries"][0]
            if entry["loadStatus"] == "LOADED":
                break
            time.sleep(0.5)
        error = entry.get("locationOrLoadError") or {}
        assert error.get("__typename") == "RepositoryLocation", f"definitions.py did not load in the UI: {entry}"
        yield url
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_ui_lists_the_stages_materializes_a_campaign_partition_and_draws_the_asset_graph(dagster_ui, data_dir,
                                                                                       tmp_path):
    url = dagster_ui
    nodes = _gql(url, """{ assetNodes { assetKey { path } dependencyKeys { path } partitionDefinition { name }
        groupName description kinds owners { ... on TeamAssetOwner { team } } } }""")["assetNodes"]
    graph = {n["assetKey"]["path"][0]: [d["path"][0] for d in n["dependencyKeys"]] for n in nodes}
    assert set(graph) == set(STAGES)
    for node in nodes:   # what the catalog shows a person: the stage's group, why it exists, its kinds, who owns it
        name = node["assetKey"]["path"][0]
        assert node["groupName"] == GROUPS[name]
        assert node["description"].startswith("Why: ") and len(node["description"]) > 120, name
        assert node["kinds"] and node["owners"] == [{"team": "media-engineering"}], name
        assert node["partitionDefinition"] is not None, name
    # each stage table's schema, declared once in video_pipeline/tables.py, is in the catalog before any run
    from video_pipeline.tables import TABLES

    for name, table in TABLES.items():
        entries = _gql(url, """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
            ... on AssetNode { metadataEntries { label ... on TableSchemaMetadataEntry {
                schema { columns { name type description } } } } } } }""", {"path": [name]})[
            "assetNodeOrError"]["metadataEntries"]
        [shown] = [e["schema"]["columns"] for e in entries if e["label"] == "dagster/column_schema"]
        assert [(c["name"], c["type"]) for c in shown] == [(n, t) for n, t, _ in table.describe()], name
        assert all(c["description"] for c in shown), name
    assert graph["campaign"] == [] and graph["prompt_batches"] == graph["narration_tracks"] == ["campaign"]
    assert sorted(graph["routed_job_plans"]) == ["campaign", "narration_tracks", "prompt_batches"]
    assert sorted(graph["generated_segments"]) == ["campaign", "routed_job_plans"]
    assert graph["stored_clips"] == ["generated_segments"]
    assert sorted(graph["assembled_outputs"]) == ["campaign", "generated_segments", "narration_tracks",
                                                  "routed_job_plans", "stored_clips"]
    assert sorted(graph["campaign_report"]) == ["assembled_outputs", "campaign", "generated_segments",
                                                "routed_job_plans"]

    accepted = accept(data_dir / "samples" / "social-ideas.csv", Settings.from_env(), move=False)
    location = _gql(url, "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")[
        "workspaceOrError"]["locationEntries"][0]["name"]
    repo = {"repositoryLocationName": location, "repositoryName": "__repository__"}
    added = _gql(url, """mutation($r: RepositorySelector!, $p: String!, $k: String!) {
        addDynamicPartition(repositorySelector: $r, partitionsDefName: $p, partitionKey: $k) { __typename } }""",
                 {"r": repo, "p": "campaigns", "k": accepted.campaign_id})
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
    launched = _gql(url, """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
                    {"p": {"selector": {**repo, "jobName": "campaign_job",
                                        "assetSelection": [{"path": [k]} for k in STAGES]},
                           "executionMetadata": {"tags": [{"key": "dagster/partition", "value": accepted.campaign_id}]},
                           "runConfigData": {}}})
    assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["launchRun"]["run"]["runId"]
    status, deadline = None, time.monotonic() + 240
    while time.monotonic() < deadline:
        status = _gql(url, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                      {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS"
    materialized = _gql(url, """{ assetOrError(assetKey: {path: ["assembled_outputs"]}) { ... on Asset {
        assetMaterializations(partitions: ["social-ideas"], limit: 1) { runId } } } }""")
    assert materialized["assetOrError"]["assetMaterializations"][0]["runId"] == run_id
    for video, seconds in (("morning", 6), ("ocean", 8), ("neon", 6)):
        assert_video(data_dir / "outputs" / "social-ideas" / f"{video}.mp4", seconds)

    # typed metadata: markdown tables, the report's path and link
    entries = _gql(url, """{ assetOrError(assetKey: {path: ["campaign_report"]}) { ... on Asset {
        assetMaterializations(partitions: ["social-ideas"], limit: 1) { runId metadataEntries { __typename label
          ... on PathMetadataEntry { path } ... on UrlMetadataEntry { url } ... on MarkdownMetadataEntry { mdStr } }
        } } } }""")["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
    by_label = {e["label"]: e for e in entries}
    report = data_dir / "outputs" / "social-ideas" / "report.html"
    assert by_label["report"]["__typename"] == "PathMetadataEntry" and by_label["report"]["path"] == str(report)
    assert by_label["dagster/uri"]["url"] == report.resolve().as_uri() and report.is_file()
    table = by_label["videos_table"]
    assert table["__typename"] == "MarkdownMetadataEntry" and table["mdStr"].count("| assembled |") == 3

    # the asset graph in a browser: every stage drawn, in its group, materialized
    _gql(url, "mutation { setNuxSeen }")   # the first-visit newsletter dialog would cover the graph
    with DevToolsPage(window=(1600, 900)) as page:
        page.navigate(f"{url}/asset-groups")
        page.wait_for("document.body.innerText.includes('reporting')")
        page.press("KeyE", "e", alt=True)   # the graph's own shortcut: expand every group
        page.wait_for("document.body.innerText.includes('campaign_report')")
        page.navigate(f"{url}/asset-groups")   # reopened expanded, the graph zooms to fit all of it
        names = " && ".join(f"document.body.innerText.includes('{name}')" for name in STAGES)
        page.wait_for(names)
        time.sleep(2)   # the zoom-to-fit animation
        graph_area = page.evaluate("JSON.stringify((() => { const r = [...document.querySelectorAll('*')].find("
                                   "e => e.innerText === 'campaign_report').getBoundingClientRect();"
                                   "return {x: r.x, y: r.y, width: r.width, height: r.height}; })())")
        shot = tmp_path / "asset-graph.png"
        pixels = page.screenshot(shot)
    import json

    node = json.loads(graph_area)
    assert node["x"] > 0 and node["x"] + node["width"] <= pixels.shape[1], f"campaign_report is off screen: {node}"
    colours, inked = region_stats(pixels, {"x": pixels.shape[1] // 3, "y": 100, "width": pixels.shape[1] * 2 // 3,
                                           "height": pixels.shape[0] - 100})
    assert colours > 30 and inked > 0.02, (colours, inked)
    keep_doc_image(shot, "asset-graph.png")
