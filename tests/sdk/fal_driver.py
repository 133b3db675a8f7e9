"""Drives fal-client the way its docs show users, in a process of its own: fal-client reads `FAL_KEY`,
`FAL_RUN_HOST` and `FAL_QUEUE_RUN_HOST` when it is imported and speaks only https, so the test starts this with
those variables pointing at the fake and `SSL_CERT_FILE` naming the CA the fake's certificate chains to (httpx's
documented trust setting). Prints one JSON object: what each step saw."""

from __future__ import annotations

import json
import sys

import fal_client
import httpx

ENDPOINT = "fal-ai/veo3.1/fast"


def main(step: str, out: str = "") -> dict:
    client = fal_client.SyncClient()
    if step == "complete":
        handle = client.submit(ENDPOINT, arguments={"prompt": "a lighthouse at dusk", "duration": "4s"})
        events = [type(e).__name__ for e in handle.iter_events(with_logs=True, interval=0.05)]
        final = handle.status(with_logs=True)
        result = handle.get()
        video = httpx.get(result["video"]["url"])          # trusts SSL_CERT_FILE like the SDK's own client
        with open(out, "wb") as handle_out:
            handle_out.write(video.content)
        return {"events": events, "logs": final.logs, "result": result}
    if step == "cancel":
        handle = client.submit(ENDPOINT, arguments={"prompt": "a lighthouse", "duration": "4s"})
        handle.cancel()
        status = handle.status()
        try:
            handle.get()
            outcome = "result"
        except fal_client.client.FalClientHTTPError as exc:
            outcome = exc.status_code
        return {"status": type(status).__name__, "error_type": getattr(status, "error_type", None),
                "result": outcome}
    if step in ("unknown-model", "wrong-key"):
        endpoint = "fal-ai/veo9-imaginary" if step == "unknown-model" else ENDPOINT
        try:
            client.submit(endpoint, arguments={"prompt": "a lighthouse"})
        except fal_client.client.FalClientHTTPError as exc:
            return {"status": exc.status_code, "message": exc.message}
        return {"status": "accepted"}
    raise SystemExit(f"unknown step {step!r}")


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
