"""The engine's layout is its architecture: each folder may import only the folders below it (docs/ARCHITECTURE.md).

Read from the source with `ast`, so an import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = PROJECT_ROOT / "video_pipeline"

CORE = "core"   # the modules directly in video_pipeline/: config, errors, atomic, tables, db
#: Alembic's environment (env.py, versions/): not a package; db.py has Alembic load it by path. Its own rule below.
MIGRATIONS = PACKAGE / "migrations"
# Each folder and what it may import besides itself. The order is the layering: lowest first.
ALLOWED: dict[str, set[str]] = {
    CORE: set(),
    "media": {CORE},
    "spec": {CORE},
    "storage": {CORE, "media"},
    "planning": {CORE, "media", "spec", "storage"},
    "providers": {CORE, "media", "planning"},
    "jobs": {CORE, "media", "spec", "storage", "planning", "providers"},
    "report": {CORE, "media", "spec", "storage", "planning", "jobs"},
    "flow": {CORE, "media", "spec", "storage", "planning", "providers", "jobs", "report"},
    "cli": {CORE, "media", "spec", "storage", "planning", "providers", "jobs", "report", "flow"},
}


def _layer(module: str) -> str:
    """`video_pipeline.jobs.engine` → `jobs`; `video_pipeline.errors` → core."""
    parts = module.split(".")
    if len(parts) >= 3 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return CORE


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every video_pipeline module `path` imports (absolute names, relative ones resolved), with its line."""
    module = _module_of(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # `from video_pipeline import jobs` names a folder; `from video_pipeline.jobs import engine` a module
            found += [(node.lineno, f"{base}.{alias.name}" if (PACKAGE.parent / base.replace(".", "/") / alias.name)
                       .is_dir() or (PACKAGE.parent / base.replace(".", "/") / f"{alias.name}.py").is_file()
                       else base) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "video_pipeline"]


def _modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if MIGRATIONS not in p.parents]


def test_every_folder_imports_only_the_folders_below_it():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ALLOWED) - {CORE}, "a folder was added or removed: place it in ALLOWED and ARCHITECTURE.md"
    offenders = []
    for path in _modules():
        importer = _layer(_module_of(path))
        for line, name in _imports(path):
            target = _layer(name)
            if target != importer and target not in ALLOWED[importer]:
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {importer} imports {name} ({target})")
    assert offenders == []


def test_core_modules_import_nothing_but_core():
    core = [p for p in PACKAGE.glob("*.py")]
    offenders = [f"{p.name}:{line}: {name}" for p in core for line, name in _imports(p) if _layer(name) != CORE]
    assert offenders == []


def test_migrations_import_only_core_and_a_revision_nothing_of_the_package():
    """A revision is a snapshot: it spells its tables out and never imports the code, which moves on. env.py runs
    inside db.py's migrate, so it imports core; the modules that declare tables only for `alembic` autogenerate."""
    revisions = sorted((MIGRATIONS / "versions").glob("*.py"))
    assert revisions, "video_pipeline/migrations/versions/ holds the ledger's revisions"
    assert [f"{p.name}:{line}: {name}" for p in revisions for line, name in _imports(p)] == []
    above_core = {name for _, name in _imports(MIGRATIONS / "env.py") if _layer(name) != CORE}
    assert above_core == {"video_pipeline.jobs.ledger", "video_pipeline.planning.observed"}


def test_media_never_imports_providers_and_nothing_imports_the_cli():
    """The two rules the issue names, spelled out so a failure reads as the rule it breaks."""
    media = [(p, name) for p in (PACKAGE / "media").rglob("*.py") for _, name in _imports(p)]
    assert [str(p) for p, name in media if _layer(name) == "providers"] == []
    roots = [PACKAGE, PROJECT_ROOT / "assets", PROJECT_ROOT / "resources"]
    users = [p for root in roots for p in root.rglob("*.py") if "cli" not in p.relative_to(PACKAGE.parent).parts[:2]
             and any(_layer(name) == "cli" for _, name in _imports(p))]
    assert users == []


def test_each_folder_states_its_rule_and_the_architecture_page_lists_every_module():
    page = (PROJECT_ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for folder in set(ALLOWED) - {CORE}:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "Rule:" in doc, f"video_pipeline/{folder}/__init__.py: the docstring should state the folder's rule"
        assert f"`{folder}/`" in page, f"docs/ARCHITECTURE.md does not describe {folder}/"
    modules = [p for p in PACKAGE.rglob("*.py") if p.name not in {"__init__.py", "__main__.py"}
               and "fakes" not in p.parts and MIGRATIONS / "versions" not in p.parents]
    named = set(re.findall(r"`([a-z0-9_/]+\.py)`", page))
    missing = sorted(str(p.relative_to(PACKAGE)) for p in modules
                     if str(p.relative_to(PACKAGE)) not in named and p.name not in named)
    assert missing == [], f"docs/ARCHITECTURE.md does not mention {missing}"
