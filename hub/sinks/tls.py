"""Client TLS contexts from the rules (TLS 1.2 or newer; mutual TLS when a client cert is given)."""

from __future__ import annotations

import ssl

from hub.errors import RuleError
from hub.rules.sinks import TlsConfig


def client_ssl_context(tls: TlsConfig | None, where: str) -> ssl.SSLContext | None:
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise RuleError(f"{where}.tls: cannot load certificates ({exc}); give PEM files that exist "
                        "(ca_file, cert_file + key_file)") from exc
    return context
