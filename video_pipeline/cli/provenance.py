"""`video-pipeline provenance FILE`: print and verify the Content Credentials (C2PA manifest) of any file, ours or
anyone's. Trust is what any viewer would grant: only the roots in VIDEO_PIPELINE_C2PA_TRUST_ANCHORS, so a video
signed with the development chain reads as valid but from an untrusted signer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from video_pipeline.config import Settings
from video_pipeline.errors import MediaError
from video_pipeline.media.credentials import DEVELOPMENT_ORG, read_credentials, trust_anchors

JSON_SCHEMA_VERSION = 1
EXIT_OK, EXIT_INVALID, EXIT_FAILED = 0, 1, 3


def cmd_provenance(args, settings: Settings) -> int:
    path = Path(args.file)
    try:
        if not path.is_file():
            raise MediaError(f"{path}: no such file")
        creds = read_credentials(path, trust_anchors(settings))
    except MediaError as exc:          # CredentialsError (a bad trust anchor file) included
        if args.json:
            print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": False,
                              "error": {"message": str(exc), "problems": []}}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    ok = creds.state in ("Trusted", "Valid") and creds.binding_ok
    if args.json:
        print(json.dumps({"version": JSON_SCHEMA_VERSION, "ok": ok, "credentials": creds.summary()}, indent=2))
        return EXIT_OK if ok else EXIT_FAILED
    if creds.state is None:
        print(f"{creds.file}: no Content Credentials")
        return EXIT_FAILED
    development = " (untrusted by design: see docs/deployment.md)" if creds.issuer == DEVELOPMENT_ORG else ""
    lines = [f"{creds.file}: Content Credentials {creds.state}" + ("" if ok else " (does NOT verify)"),
             f"  signed by   {creds.signer} / {creds.issuer}{development}",
             f"  signed at   {creds.signed_at or 'no timestamp authority'}",
             f"  generator   {creds.generator}",
             f"  disclosure  {creds.source_type or 'none'}"
             + (" (AI-generated)" if creds.ai_generated else ""),
             f"  binding     {creds.binding}",
             f"  ingredients {len(creds.ingredients)}"]
    for ing in creds.ingredients:
        made = ", ".join(p for p in (ing.get("model"), ing.get("source_type")) if p)
        lines.append(f"    - {ing.get('title')}" + (f" ({made})" if made else ""))
    lines += [f"  failure     {f}" for f in creds.failures]
    lines += [f"  info        {n} (informational, not a failure)" for n in creds.notes]
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_FAILED


def add_parsers(sub) -> None:
    text = "print and verify the Content Credentials (C2PA manifest) of any MP4, ours or anyone's"
    p = sub.add_parser("provenance", help=text, description=text)
    p.add_argument("file", help="the file to read (MP4, MOV, M4A, JPEG, PNG, ...)")
    p.add_argument("--json", action="store_true", help="print the documented JSON shape instead of text")
    p.set_defaults(func=cmd_provenance)
