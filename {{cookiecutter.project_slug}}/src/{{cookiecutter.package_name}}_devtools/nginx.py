"""``deploy/nginx.conf`` run for real, in front of local backends on other ports.

Used by ``tests/test_deploy.py`` (sticky sessions, TLS, request limits) and
``benchmarks/capacity.py`` (users per process behind the proxy). The shipped file is rendered with
the backends' ports, its two listen ports (plain HTTP, which redirects, and TLS) and, for load
tests, a higher page rate (its per-address limit is for people, and a load generator is one
address); a self-signed certificate for 127.0.0.1 goes where the config expects it (``tls/`` beside
the config). Everything else is the file as shipped.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .serving import ServedProcess, start_server

#: The config this project ships.
NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
_UPSTREAM_SERVER = re.compile(r"^(\s*)server\s+127\.0\.0\.1:\d+;\n", flags=re.MULTILINE)


def nginx_binary() -> str | None:
    """The nginx executable, also where root's PATH has it and others' does not."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin:/usr/local/sbin")


def _replace_once(pattern: str, replacement: str, text: str, what: str) -> str:
    text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"expected one {what}, found {count}")
    return text


def render_nginx_conf(
    text: str,
    backend_ports: Sequence[int],
    listen_port: int,
    tls_port: int,
    page_rate: str | None = None,
) -> str:
    """The config with one upstream ``server`` line per backend port, its plain and TLS listen ports
    and (when given) the app pages' rate limit, e.g. ``"1000r/s"``, replaced."""
    servers = list(_UPSTREAM_SERVER.finditer(text))
    if not servers:
        raise ValueError("no 'server 127.0.0.1:<port>;' lines in the upstream block")
    indent = servers[0].group(1)
    lines = "".join(f"{indent}server 127.0.0.1:{port};\n" for port in backend_ports)
    text = text[: servers[0].start()] + lines + text[servers[-1].end() :]
    text = _replace_once(r"^(\s*listen\s+)\d+;", rf"\g<1>{listen_port};", text, "plain 'listen' line")
    text = _replace_once(r"^(\s*listen\s+)\d+ ssl;", rf"\g<1>{tls_port} ssl;", text, "'listen ... ssl' line")
    text = _replace_once(r"https://\$host:\d+", f"https://$host:{tls_port}", text, "redirect to https")
    if page_rate is not None:
        text = _replace_once(
            r"zone=app_pages:(\S+) rate=\S+;", rf"zone=app_pages:\1 rate={page_rate};", text, "page rate"
        )
    return text


def make_certificate(folder: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 in ``folder/cert.pem`` (key in ``key.pem``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return folder / "cert.pem"


def nginx_test(config: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` of ``config`` with ``prefix`` as its directory."""
    prefix.mkdir(parents=True, exist_ok=True)
    command = [str(nginx_binary()), "-t", "-p", str(prefix), "-c", str(config), "-e", "stderr"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@dataclass
class RunningNginx:
    """nginx in the foreground, and the certificate clients must trust to reach its TLS port."""

    process: ServedProcess
    certificate: Path


@contextmanager
def running_nginx(
    directory: Path,
    backend_ports: Sequence[int],
    listen_port: int,
    tls_port: int,
    page_rate: str | None = None,
) -> Iterator[RunningNginx]:
    """nginx with the shipped config rendered into ``directory`` (its certificate in ``tls/``), for the
    block. Raises ``RuntimeError`` if nginx is missing or ``nginx -t`` refuses the rendered config."""
    if nginx_binary() is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    certificate = make_certificate(directory / "tls")
    config = directory / "nginx.conf"
    shipped = NGINX_CONF.read_text(encoding="utf-8")
    config.write_text(render_nginx_conf(shipped, backend_ports, listen_port, tls_port, page_rate))
    prefix = directory / "nginx"
    tested = nginx_test(config, prefix)
    if tested.returncode != 0:
        raise RuntimeError(f"nginx -t refused the rendered config:\n{tested.stderr}")
    process = start_server(
        [str(nginx_binary()), "-p", str(prefix), "-c", str(config), "-e", "stderr", "-g", "daemon off;"],
        tls_port,
        ready=None,
    )
    try:
        yield RunningNginx(process, certificate)
    finally:
        process.stop()
