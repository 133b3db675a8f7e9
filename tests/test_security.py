"""No one gets in: downloads go only where the policy allows (every redirect hop checked, a size cap on each),
no subprocess goes through a shell, and API keys never reach anything a run writes."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from video_pipeline.config import PROJECT_ROOT, Settings, SettingsError
from video_pipeline.errors import MediaError, ProviderError
from video_pipeline.storage.netguard import DownloadPolicy, DownloadRefused
from video_pipeline.providers.fakes import FakeServer
from video_pipeline.providers.fakes.fleet import FAKE_CREDENTIALS, Fleet, _webhook_environment
from video_pipeline.providers.fakes.jobs import JobBook
from video_pipeline.storage.store import fetch


@pytest.fixture(autouse=True)
def collect_garbage():
    """Finalize dropped database connections at a safe point (see tests/test_bad_inputs.py)."""
    yield
    import gc

    gc.collect()


def resolver(table: dict[str, list[str]]):
    return lambda host, port: table[host]


LIVE = DownloadPolicy(mode="live", resolve=resolver({
    "v3.fal.media": ["34.120.0.10"], "replicate.delivery": ["2600:1901:0:1::1"],
    "evil.fal.media": ["10.0.0.5"], "rebound.replicate.delivery": ["127.0.0.1"],
    "metadata.googleapis.com": ["169.254.169.254"], "example.com": ["93.184.216.34"],
    "mapped.fal.media": ["::ffff:192.168.1.1"], "127.0.0.1": ["127.0.0.1"]}))


@pytest.mark.parametrize("url", ["https://v3.fal.media/files/a.mp4", "https://replicate.delivery/x/out.mp4"])
def test_live_downloads_from_known_provider_hosts_over_https_are_allowed(url):
    LIVE.check(url)


@pytest.mark.parametrize("url, why", [
    ("http://v3.fal.media/files/a.mp4", "https only"),
    ("https://example.com/a.mp4", "not a known provider host"),
    ("https://evil.fal.media/a.mp4", "non-public address (10.0.0.5)"),
    ("https://rebound.replicate.delivery/a.mp4", "non-public address (127.0.0.1)"),
    ("https://metadata.googleapis.com/computeMetadata/v1/", "non-public address (169.254.169.254)"),
    ("https://mapped.fal.media/a.mp4", "non-public address"),
    ("https://127.0.0.1/a.mp4", "not a known provider host"),
    ("ftp://v3.fal.media/a.mp4", "only http(s)"),
])
def test_live_downloads_elsewhere_are_refused_saying_why(url, why):
    with pytest.raises(DownloadRefused, match=why.replace("(", r"\(").replace(")", r"\)")) as refused:
        LIVE.check(url)
    assert refused.value.kind == ProviderError.TERMINAL


def test_a_host_the_operator_configured_is_allowed_even_on_loopback_over_http():
    policy = DownloadPolicy.from_settings(Settings.from_env({"VIDEO_PIPELINE_MODE": "live",
                                                             "VIDEO_PIPELINE_FAL_BASE_URL": "http://127.0.0.1:8712"}))
    policy.check("http://127.0.0.1:8712/files/a.mp4")
    with pytest.raises(DownloadRefused):          # the same host on another port is not what was configured
        policy.check("http://127.0.0.1:8713/files/a.mp4")


def test_extra_result_domains_are_allowed_with_the_same_https_and_public_address_rules():
    table = {"media.cdn-example.net": ["93.184.216.34"], "inner.cdn-example.net": ["10.1.2.3"]}
    policy = dataclasses.replace(
        DownloadPolicy.from_settings(Settings.from_env({"VIDEO_PIPELINE_MODE": "live",
                                                        "VIDEO_PIPELINE_DOWNLOAD_HOSTS": " cdn-example.net, "})),
        resolve=resolver(table))
    policy.check("https://media.cdn-example.net/out.mp4")
    with pytest.raises(DownloadRefused, match="https only"):
        policy.check("http://media.cdn-example.net/out.mp4")
    with pytest.raises(DownloadRefused, match="non-public address"):
        policy.check("https://inner.cdn-example.net/out.mp4")
    with pytest.raises(DownloadRefused, match="VIDEO_PIPELINE_DOWNLOAD_HOSTS"):
        LIVE.check("https://example.com/a.mp4")               # the refusal says how to allow a CDN
    with pytest.raises(SettingsError, match="VIDEO_PIPELINE_DOWNLOAD_HOSTS='https://x': 'https://x' is not a domain"):
        Settings.from_env({"VIDEO_PIPELINE_MODE": "live", "VIDEO_PIPELINE_DOWNLOAD_HOSTS": "https://x"})


def test_refusals_never_show_a_signed_urls_query_string():
    with pytest.raises(DownloadRefused) as refused:
        LIVE.check("https://example.com/a.mp4?X-Amz-Signature=sekrit&token=abc")
    assert "sekrit" not in str(refused.value) and "token=" not in str(refused.value)


@pytest.fixture
def redirector():
    """A loopback server whose /hop redirects to the URL in its query, and whose /big is 3 MB of 'video'."""
    async def hop(request):
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def big(request):
        return Response(b"\0" * 3_000_000, media_type="video/mp4")

    with FakeServer(Starlette(routes=[Route("/hop", hop), Route("/big", big)])) as server:
        yield server


def test_each_redirect_hop_is_checked_in_live_mode(redirector, tmp_path):
    policy = DownloadPolicy.from_settings(Settings.from_env({
        "VIDEO_PIPELINE_MODE": "live", "VIDEO_PIPELINE_FAL_BASE_URL": redirector.url}))   # configured explicitly
    dest = tmp_path / "out.mp4"
    assert fetch(f"{redirector.url}/big", dest, policy=policy) == 3_000_000     # the configured host: allowed
    for target in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/x.mp4",
                   "https://example.com/x.mp4", "file:///etc/passwd"):
        with pytest.raises(ProviderError, match="refusing"):
            fetch(f"{redirector.url}/hop?to={target}", dest, policy=policy)
    with pytest.raises(ProviderError, match="refusing"):   # without a run's policy: live mode's, the strictest
        fetch(f"{redirector.url}/big", dest)


def test_every_download_has_a_size_cap(redirector, tmp_path):
    with pytest.raises(MediaError, match="cap"):
        fetch(f"{redirector.url}/big", tmp_path / "out.mp4", max_bytes=1_000_000, policy=DownloadPolicy(mode="fake"))
    source = tmp_path / "local.mp4"
    source.write_bytes(b"\0" * 2_000_000)
    with pytest.raises(MediaError, match="cap"):
        fetch(source.as_uri(), tmp_path / "copy.mp4", max_bytes=1_000_000)


# --- no shell --------------------------------------------------------------------------------------------------

SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("asyncio", "create_subprocess_shell")}

#: run in a fresh interpreter: CPython 3.11.7's ast.parse can fail with "AST constructor recursion depth mismatch"
#: late in a long test session, which would make this scan flaky in CI
SCAN = """
import ast, json, sys
shell_calls = {tuple(x) for x in json.loads(sys.argv[1])}
offences, seen = [], 0
for path in sys.argv[2:]:
    seen += 1
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any((node.module, a.name) in shell_calls for a in node.names):
            offences.append(f"{path}:{node.lineno}")            # from os import system
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (func.value.id, func.attr) if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        shell = any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                    for k in node.keywords)
        if shell or name in shell_calls:
            offences.append(f"{path}:{node.lineno}")
print(json.dumps({"seen": seen, "offences": offences}))
"""


def _python_files() -> list[Path]:
    roots = [PROJECT_ROOT / d for d in ("video_pipeline", "assets", "resources", "bench", "tests")]
    files = [p for root in roots for p in root.rglob("*.py")] + [PROJECT_ROOT / "definitions.py"]
    return [p for p in files if ".venv" not in p.parts]


def test_no_subprocess_goes_through_a_shell():
    import json

    files = [str(p) for p in _python_files()]
    proc = subprocess.run([sys.executable, "-c", SCAN, json.dumps(sorted(SHELL_CALLS)), *files],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["offences"] == []
    assert result["seen"] == len(files) > 50      # the scan saw the code base, not an empty folder


def test_the_scan_finds_a_shell_when_there_is_one(tmp_path):
    import json

    bad = tmp_path / "bad.py"   # written, never run: the scan's positive control
    keyword = "shell"          # spelt apart so a grep of the code base for a shell call finds none here
    bad.write_text(f"import os, subprocess\nfrom os import system\nsubprocess.run('ls', {keyword}=True)\n"
                   f"os.system('ls')\nsubprocess.run(['ls'], {keyword}=False)\n")
    proc = subprocess.run([sys.executable, "-c", SCAN, json.dumps(sorted(SHELL_CALLS)), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert [o.rsplit(":", 1)[1] for o in json.loads(proc.stdout)["offences"]] == ["2", "3", "4"]


# --- secrets never written -------------------------------------------------------------------------------------

SENTINEL = "SENTINEL-7f3a9c-{}-do-not-log"


#: three videos on three providers with three auth schemes: Gemini's key header, Kling's JWT, MiniMax's bearer key
SENTINEL_CAMPAIGN = """\
campaign: sentinel
defaults: {quality_tier: social, subtitles: none}
videos:
  - {id: veo, target_seconds: 4, shots: [{prompt: "Sentinel on Veo"}]}
  - {id: kling, target_seconds: 5, shots: [{prompt: "Sentinel on Kling", model: kling-3-0}]}
  - {id: hailuo, target_seconds: 6, shots: [{prompt: "Sentinel on Hailuo", model: hailuo-02}]}
"""


#: one inbox tick in a process of its own, whose environment (what /proc/self/environ holds) has the sentinels
SENSOR_TICK = """
import sys
from dagster import DagsterInstance, build_sensor_context
from assets.sensors import campaign_inbox_sensor
from resources import PipelineConfig
with open("/proc/self/environ", "rb") as environ:      # the positive control: a followed link would leak this
    assert sys.argv[1].encode() in environ.read()
with DagsterInstance.get() as instance:
    result = campaign_inbox_sensor(build_sensor_context(instance=instance, resources={"pipeline": PipelineConfig()}))
print(result.cursor)
"""


def _environ_links(inbox: Path) -> list[Path]:
    """Campaign files in the inbox that are links to the process environment, settled (the link, not its target)."""
    links = []
    for name in ("env.csv", "env.yaml", "env.jsonl"):
        (inbox / name).symlink_to("/proc/self/environ")
        os.utime(inbox / name, (1, 1), follow_symlinks=False)
        links.append(inbox / name)
    return links


def _sentinel_fleet(work: Path) -> tuple[Fleet, dict[str, str]]:
    """Every provider's fake, each accepting only its sentinel key(s); the environment that points live mode at them."""
    fleet, env = Fleet(), {"VIDEO_PIPELINE_MODE": "live"}
    for name, creds in FAKE_CREDENTIALS.items():
        module = importlib.import_module(f"video_pipeline.providers.fakes.{name}")
        book = JobBook(latency=0.4, work_dir=work / name)
        keys = {var: SENTINEL.format(var) for var in creds}
        server = FakeServer(module.create_app(book, **{kw: keys[var] for var, (_, kw) in creds.items()})).start()
        fleet.servers[name], fleet.books[name] = server, book
        env[f"VIDEO_PIPELINE_{name.upper()}_BASE_URL"] = server.url
        env.update(keys)
    env.update(_webhook_environment(fleet.servers["fal"].url))
    return fleet, env


def _encodings(secret: str) -> set[bytes]:
    raw = secret.encode()
    out = {raw}
    for shift in range(3):       # the secret inside any base64 blob (a JWT, a basic-auth header), at each alignment
        chunk = base64.b64encode(b"x" * shift + raw)[4 if shift else 0:][:-4]
        out |= {chunk, chunk.replace(b"+", b"-").replace(b"/", b"_")}
    return out


def _sentinel_signer(folder: Path) -> tuple[dict[str, str], set[bytes]]:
    """Production-style Content Credentials for the environment (the chain and the key as PEM text), and the key's
    material to search for: each line of its PEM body and its raw private scalar."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from video_pipeline.media.credentials import make_chain

    _, chain, key = make_chain("Sentinel newsroom signer", "Sentinel root CA", days=2)
    scalar = load_pem_private_key(key.encode(), None).private_numbers().private_value.to_bytes(32, "big")
    return ({"VIDEO_PIPELINE_C2PA_CERT": chain, "VIDEO_PIPELINE_C2PA_KEY": key},
            {line.encode() for line in key.splitlines()[1:-1]} | {scalar})


@pytest.mark.slow
def test_live_run_with_faults_writes_no_api_key_anywhere(data_dir, tmp_path, monkeypatch, caplog, capsys):
    """The assets through Dagster in live mode, keys read from the environment by the settings module, against
    fakes that accept only the sentinel keys; faults make the error paths write too. Then every file under the
    data directory and DAGSTER_HOME (ledger, tables, outputs, clips, run and event-log databases, compute logs),
    the captured logs and the CLI's output are searched for each key, raw and base64-encoded."""
    import logging

    from dagster import DagsterInstance, materialize

    from definitions import ASSETS, build_resources
    from resources.providers import VideoProviders
    from video_pipeline.config import Settings
    from video_pipeline.flow.intake import accept

    class CompressedLive(VideoProviders):
        """Live adapters, polling on the catalog's latency profiles compressed like VIDEO_PIPELINE_TIME_SCALE."""

        def registry(self, settings, catalog):
            registry = super().registry(settings, catalog)
            for adapter in registry.providers.values():
                adapter.latency_scale, adapter.backoff_base, adapter.stuck_grace_seconds = 0.01, 0.05, 1.0
            return registry

    fleet, env = _sentinel_fleet(tmp_path / "fakes")
    signer_env, signing_key_material = _sentinel_signer(tmp_path)
    env.update(signer_env)                  # the videos are signed with credentials from the environment too
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # error paths write error text: exercise them (a 503 on a submit makes it uncertain; Kling's lookup by
    # external_task_id then shows no task and it is sent again)
    fleet.books["kling"].faults.add("submit", "503")
    fleet.books["gemini"].faults.add("download", "expired")
    fleet.books["kling"].faults.add("job", "fail-retryable")
    caplog.set_level(logging.DEBUG)
    settings = Settings.from_env()
    home = Path(os.environ["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\ncompute_logs:\n  module: "
                                      "dagster._core.storage.local_compute_log_manager\n  class: "
                                      "LocalComputeLogManager\n  config:\n    base_dir: " + str(home / "logs") + "\n")
    resources = {**build_resources(), "providers": CompressedLive()}
    try:
        spec = data_dir / "sentinel.yaml"
        spec.write_text(SENTINEL_CAMPAIGN, encoding="utf-8")
        accepted = accept(spec, settings, move=False)
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("campaigns", [accepted.campaign_id])
            materialize(ASSETS, partition_key=accepted.campaign_id, instance=instance, resources=resources,
                                raise_on_error=False)
            second = materialize(ASSETS, partition_key=accepted.campaign_id, instance=instance, resources=resources,
                                 raise_on_error=False)
        status = subprocess.run([sys.executable, "-m", "video_pipeline.cli", "status", "--json"],
                                capture_output=True, text=True, env={**os.environ}, timeout=120)
        # links to the process environment dropped into the inbox, named on `validate` and `run`, taken by a tick
        links = _environ_links(data_dir / "inbox")
        readers = [subprocess.run([sys.executable, "-m", "video_pipeline.cli", command, str(links[0]), *json_flag],
                                  capture_output=True, text=True, env={**os.environ}, timeout=300)
                   for command in ("validate", "run") for json_flag in ([], ["--json"])]
        tick = subprocess.run([sys.executable, "-c", SENSOR_TICK, env["GEMINI_API_KEY"]], capture_output=True,
                              text=True, env={**os.environ}, cwd=PROJECT_ROOT, timeout=300)
    finally:
        fleet.stop()
    assert tick.returncode == 0, tick.stderr[-2000:]
    assert [r.returncode for r in readers] == [1, 1, 1, 1]
    assert sorted(p.name for p in (data_dir / "rejected").iterdir()) == sorted(
        [p.name for p in links] + [f"{p.name}.error.txt" for p in links])
    assert second.success, second
    clips = __import__("pandas").read_parquet(settings.tables_dir / "stored_clips" / "sentinel.parquet")
    assert (clips["state"] == "stored").all() and len(clips) == 3
    assert fleet.books["gemini"].total_submissions == 1 and fleet.books["kling"].total_submissions == 2
    assert fleet.books["minimax"].total_submissions == 1
    from video_pipeline.media.credentials import read_credentials

    outputs = __import__("pandas").read_parquet(settings.tables_dir / "assembled_outputs" / "sentinel.parquet")
    assert {read_credentials(Path(p)).signer for p in outputs["output_path"]} == {"Sentinel newsroom signer"}
    assert not (data_dir / "credentials").exists()                  # no development chain was made

    secrets = {s for s in env.values() if s.startswith("SENTINEL-")}
    assert len(secrets) == sum(len(creds) for creds in FAKE_CREDENTIALS.values())      # one per variable
    needles = {n: s for s in secrets for n in _encodings(s)}
    needles.update({n: "VIDEO_PIPELINE_C2PA_KEY" for n in signing_key_material})
    scanned, hits = 0, []
    for root in (data_dir, home):                  # ledger, tables, outputs, clips, Dagster storage, compute logs
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                blob = path.read_bytes()
                scanned += 1
                hits += [f"{path.relative_to(root.parent)}: {needles[n][:24]}" for n in needles if n in blob]
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err, status.stdout, status.stderr, tick.stdout, tick.stderr,
             *(r.stdout + r.stderr for r in readers)]
    hits += [f"logs/output: {needles[n][:24]}" for text in texts for n in needles if n in text.encode()]
    assert scanned > 20 and (data_dir / "ledger.sqlite").exists() and any(home.rglob("*.db"))
    assert hits == []
