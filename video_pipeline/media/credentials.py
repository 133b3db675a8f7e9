"""Content Credentials (C2PA) on finished videos, through c2pa-python (the bindings of the C2PA reference
implementation, c2pa-rs): a signed manifest that says the video is AI-generated, by which models, from which clips;
read back and checked; the untrusted development chain made once under the data directory when no production
credentials are set.

What a manifest holds (docs/deployment.md explains each assertion): a `c2pa.created` action with the IPTC digital
source type `compositeWithTrainedAlgorithmicMedia`; one ingredient per input (each generated segment, the narration,
music, driving audio) with a `c2pa.placed` action naming the model or voice that made it and its source type
(`trainedAlgorithmicMedia` for a generative model); a `c2pa.edited` action per assembly step; the campaign's own
facts; and a BMFF hard binding over the whole file except the manifest store itself, `ftyp` and empty padding.
Signing rewrites the file, so it is the last thing that touches it: anything that copies or re-encodes the video
afterwards drops or breaks the manifest and must sign again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from video_pipeline.atomic import private_sibling
from video_pipeline.config import Settings
from video_pipeline.errors import MediaError

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: made by a model trained on data (a video model, a neural voice)
TRAINED = "trainedAlgorithmicMedia"
#: a composite of such media with other edits: what a finished video is
COMPOSITE = "compositeWithTrainedAlgorithmicMedia"
#: made by an algorithm without training (espeak-ng's formant voice)
ALGORITHMIC = "algorithmicMedia"
GENERATOR = "video-pipeline"
#: our own assertion (a reverse-domain label, as C2PA asks of entity-specific ones): campaign, video, spec hash
CAMPAIGN_ASSERTION = "org.videopipeline.campaign"
#: the key under each ingredient's metadata with what the ledger knows of it (model, provider, job id, hashes)
INGREDIENT_FACTS = "org.videopipeline.ingredient"
DEVELOPMENT_DIR = Path("credentials") / "c2pa-development"
DEVELOPMENT_ORG = "video-pipeline UNTRUSTED development credentials"
#: what the hard binding may leave out: the manifest store (a uuid box), and boxes C2PA always leaves out
ALLOWED_EXCLUSIONS = {"/uuid", "/ftyp", "/mfra", "/free", "/skip"}
FORMATS = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".m4a": "audio/mp4",
           ".aac": "audio/mp4", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".flac": "audio/flac",
           ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
_ALGORITHMS = {"es256": "ES256", "es384": "ES384", "es512": "ES512", "ps256": "PS256", "ps384": "PS384",
               "ps512": "PS512", "ed25519": "ED25519"}


class CredentialsError(MediaError):
    """Signing credentials the pipeline cannot use (names the variable, never its value)."""


def generator_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(GENERATOR)
    except PackageNotFoundError:
        return "0+unknown"


# --- signing credentials ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SigningKey:
    """What signs: the certificate chain (PEM, signer first), its private key (never shown), the algorithm, an
    optional timestamp authority, and the roots the verification check trusts."""

    chain: str
    key: SecretStr
    algorithm: str
    tsa_url: str | None
    anchors: str | None
    development: bool
    signer: str


def signing_key(settings: Settings) -> SigningKey:
    """VIDEO_PIPELINE_C2PA_CERT/_KEY when set (checked: the key matches the certificate and the algorithm);
    otherwise the development chain under the data directory, made on first use."""
    anchors = trust_anchors(settings)
    if settings.c2pa_cert is None or settings.c2pa_key is None:
        dev = development_key(settings.data_dir / DEVELOPMENT_DIR)
        return SigningKey(dev.chain, dev.key, dev.algorithm, settings.c2pa_tsa_url,
                          "\n".join(a for a in (dev.anchors, anchors) if a), True, dev.signer)
    chain = _pem(settings.c2pa_cert, "VIDEO_PIPELINE_C2PA_CERT")
    key = SecretStr(_pem(settings.c2pa_key.get_secret_value(), "VIDEO_PIPELINE_C2PA_KEY"))
    signer = _check_pair(chain, key, settings.c2pa_alg)
    return SigningKey(chain, key, settings.c2pa_alg, settings.c2pa_tsa_url, anchors, False, signer)


def signing_notice(settings: Settings) -> str | None:
    """What a run says once when it signs with the development chain in live mode."""
    if settings.mode != "live" or settings.c2pa_cert is not None:
        return None
    return ("Content Credentials are signed with the pipeline's UNTRUSTED development certificate (live mode without "
            "VIDEO_PIPELINE_C2PA_CERT and VIDEO_PIPELINE_C2PA_KEY): platforms will show the videos as AI-generated "
            "but from an unknown signer. Get a document-signing certificate from a CA on the C2PA trust list and set "
            "both variables (docs/deployment.md, 'Content Credentials').")


def _pem(value: str, variable: str) -> str:
    """PEM text as given, or the text of the file the value names. The value is never echoed (it may be a key)."""
    if value.lstrip().startswith("-----BEGIN"):
        return value.strip() + "\n"
    path = Path(value).expanduser()
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError, ValueError):
        raise CredentialsError(f"{variable}: expected PEM text (starting -----BEGIN) or the path of a readable file "
                               "holding it") from None
    if "-----BEGIN" not in text:
        raise CredentialsError(f"{variable}: the file it names holds no PEM block (-----BEGIN ...)")
    return text


def trust_anchors(settings: Settings) -> str | None:
    """The roots in VIDEO_PIPELINE_C2PA_TRUST_ANCHORS (PEM), checked to be certificates; None when unset."""
    if settings.c2pa_trust_anchors is None:
        return None
    text = _pem(str(settings.c2pa_trust_anchors), "VIDEO_PIPELINE_C2PA_TRUST_ANCHORS")
    _certificates(text, "VIDEO_PIPELINE_C2PA_TRUST_ANCHORS")
    return text


def _certificates(pem: str, variable: str) -> list:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise CredentialsError(f"{variable}: expected PEM certificates (-----BEGIN CERTIFICATE-----)") from None


def _check_pair(chain: str, key: SecretStr, algorithm: str) -> str:
    """The signer's name; CredentialsError when the key does not load, does not match the certificate, or is not
    of the algorithm's kind."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    cert = _certificates(chain, "VIDEO_PIPELINE_C2PA_CERT")[0]
    try:
        private = serialization.load_pem_private_key(key.get_secret_value().encode(), password=None)
    except (ValueError, TypeError):
        raise CredentialsError("VIDEO_PIPELINE_C2PA_KEY: expected an unencrypted PEM private key (PKCS#8 or "
                               "traditional)") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CredentialsError("VIDEO_PIPELINE_C2PA_KEY does not belong to the first certificate of "
                               "VIDEO_PIPELINE_C2PA_CERT (the chain must start with the signing certificate)")
    curves = {"es256": "secp256r1", "es384": "secp384r1", "es512": "secp521r1"}
    kind_ok = (isinstance(private, ec.EllipticCurvePrivateKey) and curves.get(algorithm) == private.curve.name
               or isinstance(private, rsa.RSAPrivateKey) and algorithm.startswith("ps")
               or isinstance(private, ed25519.Ed25519PrivateKey) and algorithm == "ed25519")
    if not kind_ok:
        raise CredentialsError(f"VIDEO_PIPELINE_C2PA_ALG={algorithm}: the key is {_key_kind(private)}; es256/384/512 "
                               "need an EC key on P-256/P-384/P-521, ps* an RSA key, ed25519 an Ed25519 key")
    return _name_of(cert)


def _key_kind(private) -> str:
    curve = getattr(private, "curve", None)
    return f"an EC key on {curve.name}" if curve is not None else f"a {type(private).__name__.removeprefix('_')}"


def _name_of(cert) -> str:
    from cryptography.x509.oid import NameOID

    parts = [a.value for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME)
             for a in cert.subject.get_attributes_for_oid(oid)]
    return ", ".join(str(p) for p in parts) or cert.subject.rfc4514_string()


def development_key(folder: Path) -> SigningKey:
    """The development chain in `folder` (a CA and an ES256 signing certificate with the extensions C2PA requires),
    made the first time and kept: `signer.pem` (key and chain, owner-only), `ca.pem` (to trust it in a viewer),
    README.txt. Made whole or not at all; two processes making it at once both end up with one chain."""
    bundle = folder / "signer.pem"
    if not bundle.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _, chain_pem, key_pem = make_chain("video-pipeline development signer", "video-pipeline development CA",
                                           DEVELOPMENT_ORG)
        partial = private_sibling(bundle)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key_pem + chain_pem)
        try:
            os.link(partial, bundle)       # never over another process's chain
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
    text = bundle.read_text(encoding="ascii")
    key_end = text.index("-----END PRIVATE KEY-----") + len("-----END PRIVATE KEY-----\n")
    chain = text[key_end:]
    certs = _certificates(chain, str(bundle))
    ca_pem = certs[-1].public_bytes(_pem_encoding()).decode()
    for name, content in (("ca.pem", ca_pem), ("README.txt", _DEVELOPMENT_README)):
        if not (folder / name).exists():
            partial = private_sibling(folder / name)
            partial.write_text(content, encoding="utf-8")
            os.replace(partial, folder / name)
    return SigningKey(chain, SecretStr(text[:key_end]), "es256", None, ca_pem, True, _name_of(certs[0]))


def _pem_encoding():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM


_DEVELOPMENT_README = """UNTRUSTED DEVELOPMENT CREDENTIALS for Content Credentials (C2PA).

video-pipeline made this certificate authority and signing certificate because no production credentials were set
(VIDEO_PIPELINE_C2PA_CERT and VIDEO_PIPELINE_C2PA_KEY). Videos signed with them say truthfully that they are
AI-generated and by which models, but no viewer trusts this signer: validators report `signingCredential.untrusted`.
Trust ca.pem only on your own machine, to check the pipeline's output. Never use these for published videos:
see docs/deployment.md, "Content Credentials". Delete this folder to make a new chain.
"""


def make_chain(signer: str, authority: str, organisation: str | None = None, curve=None,
               days: int = 3650) -> tuple[str, str, str]:
    """(CA PEM, chain PEM signer-first, key PEM): a CA (`authority`) and a signer certificate with what C2PA asks
    of one: `digitalSignature` key usage, the document-signing and email-protection extended key usages, SKI/AKI,
    not a CA. EC keys on `curve` (default P-256, for ES256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    curve = curve or ec.SECP256R1()
    digest = hashes.SHA384() if curve.key_size > 256 else hashes.SHA256()

    def name(common: str) -> x509.Name:
        parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        return x509.Name(parts + ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)] if organisation
                                  else []))

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign, crl_sign=not sign,
                             encipher_only=False, decipher_only=False)

    ca_key, key = ec.generate_private_key(curve), ec.generate_private_key(curve)
    ca_name = name(authority)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, digest))
    cert = (x509.CertificateBuilder().subject_name(name(signer))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),   # documentSigning
                                                  ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, digest))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    ca_pem = ca.public_bytes(pem).decode()
    return ca_pem, cert.public_bytes(pem).decode() + ca_pem, key_pem


# --- what a manifest says -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ingredient:
    """One input of a finished video: a generated segment, the narration, the music, the driving audio."""

    label: str                    # unique in the manifest: segment-0, narration, music, audio
    title: str                    # what a reader lists: "segment 0: veo-3-fast"
    path: Path
    source_type: str | None       # IPTC digital source type; None for a person's own file
    agent: str | None             # the model or voice that made it
    facts: dict = field(default_factory=dict)   # model, provider, job id, prompt hash, SHA-256, ...


@dataclass(frozen=True)
class Manifest:
    """Everything the manifest of one finished video says."""

    title: str
    ingredients: tuple[Ingredient, ...]
    edits: tuple[str, ...]        # each assembly step, in words (a c2pa.edited action each)
    facts: dict                   # campaign, video id, spec SHA-256

    def definition(self) -> dict:
        version = generator_version()
        me = {"name": GENERATOR, "version": version}
        actions = [{"action": "c2pa.created", "digitalSourceType": IPTC + COMPOSITE, "softwareAgent": me,
                    "description": f"assembled by {GENERATOR} from {self.generated_count} AI-generated segment(s)"}]
        for ing in self.ingredients:
            placed = {"action": "c2pa.placed", "parameters": {"ingredientIds": [ing.label]},
                      "description": ing.title}
            if ing.source_type:
                placed["digitalSourceType"] = IPTC + ing.source_type
            if ing.agent:
                placed["softwareAgent"] = {"name": ing.agent}
            actions.append(placed)
        actions += [{"action": "c2pa.edited", "softwareAgent": me, "description": edit} for edit in self.edits]
        return {"claim_generator_info": [me], "title": self.title, "format": "video/mp4",
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}},
                               {"label": CAMPAIGN_ASSERTION, "data": self.facts}]}

    @property
    def generated_count(self) -> int:
        return sum(1 for i in self.ingredients if i.label.startswith("segment-"))


def _context(anchors: str | None = None, verify_after_sign: bool = True):
    """c2pa settings: offline (no remote manifests, no OCSP), no thumbnails, the given roots trusted, and a small
    in-memory backing store (large videos go through a temporary file, keeping assembly's memory bound)."""
    import c2pa

    config: dict = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False,
                               "verify_after_sign": verify_after_sign},
                    "builder": {"thumbnail": {"enabled": False}},
                    "core": {"backing_store_memory_threshold_in_mb": 32}}
    if anchors:
        config["trust"] = {"user_anchors": anchors}
    return c2pa.Context.from_dict(config)


def sign(video: Path, manifest: Manifest, key: SigningKey) -> Path:
    """Sign `video` in place (written beside it, then moved over it) with `manifest`; returns its path. It is not
    validated here (a quarter of signing's time): read it back with `read_credentials`, as assembly does."""
    import c2pa

    video = Path(video)
    partial = private_sibling(video, "c2pa")
    try:
        with c2pa.Signer.from_info(c2pa.C2paSignerInfo(
                getattr(c2pa.C2paSigningAlg, _ALGORITHMS[key.algorithm]), key.chain.encode(),
                key.key.get_secret_value().encode(), key.tsa_url)) as signer, \
                c2pa.Builder(manifest.definition(), context=_context(key.anchors, verify_after_sign=False)) as builder:
            for ing in manifest.ingredients:
                with open(ing.path, "rb") as fh:
                    builder.add_ingredient({"title": ing.title, "relationship": "componentOf", "label": ing.label,
                                            "metadata": {INGREDIENT_FACTS: {**ing.facts, "label": ing.label}}},
                                           FORMATS.get(ing.path.suffix.lower(), "application/octet-stream"), fh)
            with open(video, "rb") as src, open(partial, "w+b") as dst:
                builder.sign(signer, "video/mp4", src, dst)
        os.replace(partial, video)
    except c2pa.C2paError as exc:     # the SDK's words name what failed, never the key
        raise MediaError(f"{video.name}: signing Content Credentials failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return video


# --- reading and checking --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """What a file's Content Credentials say, as read back and validated."""

    file: str
    state: str | None                     # Trusted, Valid or Invalid; None: the file carries no manifest
    signer: str | None = None
    issuer: str | None = None
    signed_at: str | None = None          # from a timestamp authority, when one countersigned
    generator: str | None = None
    source_type: str | None = None        # the created action's digital source type: the AI disclosure
    ingredients: tuple[dict, ...] = ()    # title, model, source_type, facts
    failures: tuple[str, ...] = ()        # validation failures: "code: explanation"
    notes: tuple[str, ...] = ()           # informational validation codes
    binding: str = "none"                 # what the hard binding covers, in words
    binding_ok: bool = False
    store: dict = field(default_factory=dict)    # the whole manifest store as the reader gives it

    @property
    def ai_generated(self) -> bool:
        return self.source_type in (TRAINED, COMPOSITE) or any(
            i.get("source_type") in (TRAINED, COMPOSITE) for i in self.ingredients)

    def summary(self) -> dict:
        return {"file": self.file, "state": self.state, "signer": self.signer, "issuer": self.issuer,
                "signed_at": self.signed_at, "generator": self.generator,
                "digital_source_type": self.source_type, "ai_generated": self.ai_generated,
                "ingredients": list(self.ingredients), "failures": list(self.failures), "notes": list(self.notes),
                "hard_binding": self.binding}


def read_credentials(path: Path, anchors: str | None = None) -> Credentials:
    """Read and validate any file's manifest (ours or anyone's) with `anchors` trusted."""
    import c2pa

    path = Path(path)
    try:
        with _context(anchors) as context, open(path, "rb") as fh, \
                c2pa.Reader(FORMATS.get(path.suffix.lower()), fh, context=context) as reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    except c2pa.C2paError as exc:
        if type(exc).__name__.endswith("ManifestNotFound"):
            return Credentials(file=path.name, state=None, binding="none: no manifest in the file")
        return Credentials(file=path.name, state="Invalid", failures=(f"unreadable: {exc}",),
                           binding="unknown: the manifest does not parse")
    except OSError as exc:
        raise MediaError(f"{path.name}: cannot read it: {exc.strerror}") from None
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = tuple(f"{r['code']}: {r.get('explanation', '')}" for r in results.get("failure", []))
    for delta in (store.get("validation_results") or {}).get("ingredientDeltas") or []:
        failures += tuple(f"ingredient {r['code']}: {r.get('explanation', '')}"
                          for r in (delta.get("validationDeltas") or {}).get("failure", []))
    binding, binding_ok = _binding(path, active, results)
    signature = active.get("signature_info") or {}
    generator = next((f"{g.get('name')} {g.get('version', '')}".strip()
                      for g in active.get("claim_generator_info") or []), active.get("claim_generator"))
    actions = [a for assertion in active.get("assertions", []) if assertion.get("label", "").startswith("c2pa.actions")
               for a in (assertion.get("data") or {}).get("actions", [])]
    created = next((a for a in actions if a.get("action") in ("c2pa.created", "c2pa.opened")), {})
    return Credentials(
        file=path.name, state=state, signer=signature.get("common_name"), issuer=signature.get("issuer"),
        signed_at=signature.get("time"), generator=generator,
        source_type=_short(created.get("digitalSourceType")), ingredients=tuple(_ingredients(active, actions)),
        failures=failures, notes=tuple(r["code"] for r in results.get("informational", [])),
        binding=binding, binding_ok=binding_ok, store=store)


def _short(source_type: str | None) -> str | None:
    return source_type.rsplit("/", 1)[-1] if source_type else None


def _ingredients(active: dict, actions: list[dict]) -> list[dict]:
    """Each ingredient with the model and source type of the action that placed it (linked by the action's
    hashed reference to the ingredient assertion)."""
    placed: dict[str, dict] = {}
    for a in actions:
        for ref in (a.get("parameters") or {}).get("ingredients") or []:
            placed[ref.get("url", "").rsplit("/", 1)[-1]] = a
    found = []
    for ing in active.get("ingredients", []):
        action = placed.get(ing.get("label", ""), {})
        facts = (ing.get("metadata") or {}).get(INGREDIENT_FACTS) or {}
        found.append({"title": ing.get("title"), "model": (action.get("softwareAgent") or {}).get("name")
                      if isinstance(action.get("softwareAgent"), dict) else action.get("softwareAgent"),
                      "source_type": _short(action.get("digitalSourceType")), "facts": facts})
    return found


def top_level_boxes(path: Path) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level box of an ISO BMFF (MP4) file."""
    boxes, size_of_file = [], Path(path).stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size_of_file:
            fh.seek(offset)
            size, kind = struct.unpack(">I4s", fh.read(8))
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0]
            elif size == 0:
                size = size_of_file - offset
            if size < 8:
                break
            boxes.append((kind.decode("latin-1"), offset, size))
            offset += size
    return boxes


def _binding(path: Path, active: dict, results: dict) -> tuple[str, bool]:
    """What the hard binding covers, and whether it validates and leaves out only the manifest store, `ftyp` and
    padding (so every byte of picture, sound and index is bound)."""
    hashes = [a for a in active.get("assertions", []) if a.get("label", "").startswith("c2pa.hash.bmff")]
    if not hashes:
        data = any(a.get("label", "").startswith("c2pa.hash.data") for a in active.get("assertions", []))
        return ("a data hash (not an MP4 box hash)" if data else "none: no hard binding"), False
    codes = {r["code"] for r in results.get("success", [])}
    broken = [r["code"] for r in results.get("failure", []) if r["code"].startswith("assertion.bmffHash")]
    excluded = {x.get("xpath") for x in (hashes[0].get("data") or {}).get("exclusions", [])}
    left_out = excluded - ALLOWED_EXCLUSIONS
    if broken or "assertion.bmffHash.match" not in codes:
        return f"broken: the file changed after signing ({', '.join(broken) or 'no match'})", False
    if left_out:
        return f"partial: leaves out {', '.join(sorted(left_out))}", False
    boxes = top_level_boxes(path)
    total = sum(size for _, _, size in boxes)
    skipped = sum(size for kind, _, size in boxes if f"/{kind}" in excluded)
    return (f"whole file: {total - skipped:,} of {total:,} bytes (all but the manifest store, ftyp and padding)",
            True)


def check(creds: Credentials, expected: list[dict], require_trust: bool) -> list[str]:
    """What is wrong with a finished video's credentials, against the segments the ledger says made it (each
    `expected` item: segment_index, model, sha256, provider_job_id). Empty when all is well."""
    if creds.state is None:
        return ["no Content Credentials in the file (copied or re-encoded after signing, or never signed)"]
    problems = list(creds.failures)
    if require_trust and creds.state != "Trusted":
        problems.append(f"validation state {creds.state}, expected Trusted (the signer's root must be a trust anchor)")
    elif creds.state not in ("Trusted", "Valid"):
        problems.append(f"validation state {creds.state}")
    if not creds.binding_ok:
        problems.append(f"hard binding {creds.binding}")
    if creds.source_type != COMPOSITE:
        problems.append(f"digital source type {creds.source_type}, expected {COMPOSITE}")
    segments = {int(i["facts"]["segment_index"]): i for i in creds.ingredients
                if str(i["facts"].get("label", "")).startswith("segment-") and "segment_index" in i["facts"]}
    if len(segments) != len(expected):
        problems.append(f"{len(segments)} segment ingredient(s), the ledger says {len(expected)} segment(s) made it")
    for want in expected:
        have = segments.get(int(want["segment_index"]))
        if have is None:
            problems.append(f"segment {want['segment_index']}: no ingredient")
            continue
        for key in ("model", "sha256", "provider_job_id"):
            if have["facts"].get(key) != want.get(key):
                problems.append(f"segment {want['segment_index']}: ingredient {key} {have['facts'].get(key)!r}, "
                                f"the ledger says {want.get(key)!r}")
        if have["source_type"] != TRAINED or have["model"] != want.get("model"):
            problems.append(f"segment {want['segment_index']}: placed by {have['model']!r} as {have['source_type']}, "
                            f"expected {want.get('model')!r} as {TRAINED}")
    return problems


def write_sidecar(video: Path, creds: Credentials) -> Path:
    """`<video>.c2pa.json` beside the video: the same facts, for systems that strip metadata, bound to the signed
    file by its SHA-256."""
    video = Path(video)
    digest = hashlib.sha256()
    with open(video, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    out = video.with_suffix(".c2pa.json")
    partial = private_sibling(out)
    partial.write_text(json.dumps({"file": video.name, "sha256": digest.hexdigest(), "credentials": creds.summary(),
                                   "manifest_store": creds.store}, indent=2), encoding="utf-8")
    os.replace(partial, out)
    return out


def fingerprint(text: str) -> str:
    """The SHA-256 (hex) a manifest carries instead of a prompt's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
