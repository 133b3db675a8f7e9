"""A throwaway certificate authority for fakes served over TLS (`video-pipeline fakes serve --tls`), for clients
that speak only https (fal's SDK builds `https://{FAL_QUEUE_RUN_HOST}/...` URLs).

`local_ca(folder)` makes a new CA (trustme) and one server certificate for 127.0.0.1 and localhost, writes
`ca.pem` (what a client trusts: `SSL_CERT_FILE`, httpx's `verify=`), `server.pem` and `server.key` into `folder`,
and returns their paths. Nothing is reused between calls, and the CA signs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

#: the names the fakes answer on
IDENTITIES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class LocalCA:
    ca_file: Path       # the CA certificate (PEM): what clients trust
    cert_file: Path     # the server certificate (PEM), with the chain to the CA
    key_file: Path      # the server's private key (PEM), readable by its owner only


def local_ca(folder: Path) -> LocalCA:
    """A new CA and a server certificate for the fakes' names, written into `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="video-pipeline fakes")
    leaf = ca.issue_cert(*IDENTITIES)
    files = LocalCA(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_file))
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    files.key_file.touch(mode=0o600)
    files.key_file.chmod(0o600)
    leaf.private_key_pem.write_to_path(str(files.key_file))
    return files
