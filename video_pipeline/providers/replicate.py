"""Replicate predictions API: one prediction per video.

Create `POST /v1/models/{owner}/{name}/predictions` with `{input: {...}}` (or `POST /v1/predictions` with
`{version, input}` for an `owner/name:version` route), poll `GET /v1/predictions/{id}`, cancel
`POST /v1/predictions/{id}/cancel`, list `GET /v1/predictions?created_after&created_before` (newest first, 100 a
page, `{next, previous, results}` with each prediction's `input`, `model`, `version`, `created_at`). Statuses:
starting · processing · succeeded · failed · canceled · aborted. `output` is a URI or a list of them; API outputs
are deleted after 1 hour. No `Prefer: wait` (the async flow is the default). Auth: `Authorization: Bearer
$REPLICATE_API_TOKEN`. Errors are problem details `{title, detail, status}`; 429 carries `Retry-After`.
Sources: replicate/replicate-python `prediction.py`, `client.py`; replicate.com/docs/topics/predictions/lifecycle,
…/rate-limits, …/data-retention; the list's filters: replicate/replicate-python-beta `types/prediction_list_params.py`.
"""

from __future__ import annotations

import datetime as dt
import re

import httpx

from video_pipeline.errors import ProviderError
from video_pipeline.media.render import frame_size
from video_pipeline.providers.base import GenerationRequest, JobState, JobStatus
from video_pipeline.providers.http import BearerKeyProvider
from video_pipeline.providers.media_inputs import data_uri

STATES = {"starting": JobState.QUEUED, "processing": JobState.RUNNING, "succeeded": JobState.SUCCEEDED,
          "failed": JobState.FAILED, "canceled": JobState.CANCELED, "aborted": JobState.CANCELED}
#: failed-prediction errors that the same input on this model will hit again: E005 is Replicate's content filter;
#: input errors raised inside the model surface as Python exception names (unconfirmed: no documented code)
TERMINAL_ERRORS = re.compile(r"\(E005\)|flagged as sensitive|\b(ValueError|ValidationError|TypeError)\b|"
                             r"[Ii]nvalid input", re.IGNORECASE)
URL_LIFETIME = dt.timedelta(hours=1)
#: pages of the prediction list `find_submitted` reads at most (100 predictions a page)
LOOKUP_PAGES = 10
#: per-owner name of the first-frame input (most official video models call it `image`)
IMAGE_FIELDS = {"kwaivgi": "start_image", "minimax": "first_frame_image"}


class ReplicateProvider(BearerKeyProvider):
    name = "replicate"
    default_base_url = "https://api.replicate.com"
    env_keys = ("REPLICATE_API_TOKEN",)
    #: how a lost submit is found again, for the ledger's note
    lookup = "prediction list"

    # Classification is by status alone (the inherited `error_kind`): 401 bad token and 402 "Insufficient credit"
    # stop the campaign, 404/422 (unknown model, input validation failed) end this model, 429 and 5xx are retried.
    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return super().error_message(response)
        if not isinstance(body, dict):
            return super().error_message(response)
        return f"{body.get('title') or ''}: {body.get('detail') or ''}".strip(": ") or super().error_message(response)

    @staticmethod
    def body(request: GenerationRequest) -> dict:
        """`{input: {...}}` for the request's category; files go inline as data URIs."""
        owner = request.route_model_id.split("/", 1)[0].lower()
        model = request.route_model_id.lower()
        if request.category == "audio_lip_sync":
            if request.image is None or request.audio is None:
                raise ProviderError("lip sync needs a portrait image and an audio track", kind=ProviderError.TERMINAL,
                                    provider="replicate")
            return {"input": {"image": data_uri(request.image), "audio": data_uri(request.audio)}}
        if request.category == "video_enhance":
            if request.video is None:
                raise ProviderError("upscaling needs an input video", kind=ProviderError.TERMINAL,
                                    provider="replicate")
            return {"input": {"video": data_uri(request.video), "target_resolution": request.resolution}}
        inputs: dict = {"prompt": request.prompt, "duration": int(request.seconds),
                        "aspect_ratio": request.aspect_ratio, "resolution": request.resolution}
        if "hailuo" in model:
            inputs["resolution"] = {"720p": "768p"}.get(request.resolution, request.resolution)
        if owner == "wan-video":
            width, height = frame_size(request.resolution, request.aspect_ratio)
            del inputs["aspect_ratio"], inputs["resolution"]
            inputs["size"] = f"{width}*{height}"
        if request.image is not None:
            inputs[IMAGE_FIELDS.get(owner, "image")] = data_uri(request.image)
        if request.video is not None:
            inputs["video"] = data_uri(request.video)
        if request.audio is not None:
            inputs["audio"] = data_uri(request.audio)
        return {"input": inputs}

    @staticmethod
    def model_for(request: GenerationRequest) -> str:
        """The route's model, switched to its image-to-video twin where the family splits them (`wan-2.6-t2v`)."""
        model = request.route_model_id
        if request.category == "image_to_video" and model.endswith("-t2v"):
            return model[: -len("t2v")] + "i2v"
        return model

    def webhook_fields(self) -> dict:
        """Ask Replicate to POST the prediction to our receiver when it completes (Standard Webhooks signed)."""
        url = self.callback_url()
        return {"webhook": url, "webhook_events_filter": ["completed"]} if url else {}

    async def submit(self, request: GenerationRequest) -> str:
        model, _, version = self.model_for(request).partition(":")
        if version:
            response = await self.request("POST", "/v1/predictions", json={"version": version, **self.body(request),
                                                                            **self.webhook_fields()})
        else:
            response = await self.request("POST", f"/v1/models/{model}/predictions",
                                          json={**self.body(request), **self.webhook_fields()})
        return response.json()["id"]

    async def find_submitted(self, request: GenerationRequest, since: dt.datetime, until: dt.datetime,
                             exclude: frozenset[str] = frozenset()) -> str | None:
        """The id of the prediction `request` created between `since` and `until` (same model or version, same
        input where the list still shows it), not in `exclude`; None when there is none. ProviderError otherwise."""
        model, _, version = self.model_for(request).partition(":")
        try:
            wanted = {k: v for k, v in self.body(request)["input"].items()
                      if not (isinstance(v, str) and v.startswith("data:"))}   # the list may show files as URLs
        except OSError as exc:
            raise ProviderError(f"find_submitted: cannot read the request's inputs ({exc})", provider=self.name)
        # created_before excludes its instant: one second later keeps a prediction made at `until`
        params = {"created_after": _stamp(since), "created_before": _stamp(until + dt.timedelta(seconds=1))}
        url, found = "/v1/predictions", []
        for _ in range(LOOKUP_PAGES):
            page = (await self.request("GET", url, params=params)).json()
            try:
                past = False
                for p in page["results"]:
                    created = _parse_time(p["created_at"])
                    past = past or created < since
                    same_model = p.get("version") == version if version else p.get("model") == model
                    if (same_model and since <= created <= until and p["id"] not in exclude
                            and _same_input(p.get("input"), wanted)):
                        found.append(p["id"])
                url, params = page.get("next"), None     # `next` carries the filters and the cursor
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ProviderError(f"find_submitted: unreadable prediction list ({type(exc).__name__}: {exc})",
                                    provider=self.name) from exc
            if past or not url:
                break
        else:
            raise ProviderError(f"find_submitted: more than {LOOKUP_PAGES} pages of predictions in the window; "
                                "not read to the end", provider=self.name)
        if len(found) > 1:
            raise ProviderError(f"find_submitted: {len(found)} predictions of {self.model_for(request)} with this "
                                f"input in the window ({', '.join(found)}); ambiguous, left to an operator",
                                provider=self.name)
        return found[0] if found else None

    async def poll(self, job_id: str) -> JobStatus:
        response = await self.request("GET", f"/v1/predictions/{job_id}", job_id=job_id)
        return self.status_from(response.json())

    @staticmethod
    def status_from(prediction: dict) -> JobStatus:
        """Map a prediction (as the docs show it) onto the common status."""
        name = prediction.get("status", "")
        state = STATES.get(name, JobState.RUNNING)
        if state == JobState.SUCCEEDED:
            output = prediction.get("output")
            url = output[0] if isinstance(output, list) and output else output
            if not isinstance(url, str) or not url:
                return JobStatus(JobState.FAILED, error="succeeded without an output URI",
                                 error_kind=ProviderError.RETRYABLE)
            completed = _parse_time(prediction.get("completed_at"))
            created = _parse_time(prediction.get("created_at"))
            latency = (completed - created).total_seconds() if completed and created else None
            expires = (completed or dt.datetime.now(dt.timezone.utc)) + URL_LIFETIME
            return JobStatus(state, progress=1.0, output_url=url, url_expires_at=expires, latency_seconds=latency)
        if state == JobState.FAILED:
            error = str(prediction.get("error") or "prediction failed")
            kind = ProviderError.TERMINAL if TERMINAL_ERRORS.search(error) else ProviderError.RETRYABLE
            return JobStatus(state, error=error, error_kind=kind)
        if name == "aborted":
            return JobStatus(state, error="aborted: the Cancel-After deadline passed before the prediction started")
        return JobStatus(state)

    async def cancel(self, job_id: str) -> bool:
        try:
            response = await self.request("POST", f"/v1/predictions/{job_id}/cancel", job_id=job_id)
        except ProviderError as exc:
            if exc.kind == ProviderError.FATAL:
                raise
            return False
        # Replicate answers with the prediction; a finished one comes back unchanged.
        return response.json().get("status") in ("canceled", "starting", "processing")


def _same_input(listed: object, wanted: dict) -> bool:
    """Whether a listed prediction's input agrees with ours; an input the list no longer shows (`data_removed`)
    agrees with anything, so the prediction stays a candidate."""
    if not listed:
        return True
    return isinstance(listed, dict) and all(listed.get(k) == v or str(listed.get(k)) == str(v)
                                            for k, v in wanted.items())


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
