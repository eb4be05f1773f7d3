"""Fetching an include over HTTP(S): timeouts, size limit, loopback-only plain http, masked URLs."""

from __future__ import annotations

import ipaddress
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from localci.config.include_sources import external_error

if TYPE_CHECKING:
    import urllib.request
    from http.client import HTTPMessage

HTTP_TIMEOUT_S = 10.0
MAX_BYTES = 4 * 1024 * 1024


def http_get(url: str, what: str, timeout_s: float = HTTP_TIMEOUT_S) -> bytes:
    """GET `url` (https, or http to a loopback host) with a timeout; errors name `what`."""
    import http.client
    import urllib.error
    import urllib.request

    check_url(url)
    opener = _opener(url)
    request = urllib.request.Request(url, headers={"User-Agent": "localci"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout_s) as response:
            data: bytes = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise external_error(
            f"{what} could not be fetched: HTTP {exc.code} {exc.reason} from {masked_url(url)}",
            _http_hint(exc.code, what),
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        raise external_error(
            f"{what} could not be fetched from {masked_url(url)}: {_reason(exc, timeout_s)}"
        ) from None
    if len(data) > MAX_BYTES:
        raise external_error(f"{what} is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    return data


def _opener(url: str) -> urllib.request.OpenerDirector:
    import urllib.request

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        """Follow redirects only to URLs localci would fetch directly."""

        def redirect_request(
            self,
            req: urllib.request.Request,
            fp: IO[bytes],
            code: int,
            msg: str,
            headers: HTTPMessage,
            newurl: str,
        ) -> urllib.request.Request | None:
            check_url(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    handlers: list[urllib.request.BaseHandler] = [CheckedRedirects()]
    if _is_loopback(urlsplit(url).hostname or ""):
        # Tests serve includes on 127.0.0.1; a proxy from the environment must not see that.
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _reason(exc: BaseException, timeout_s: float) -> str:
    import urllib.error

    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    return str(reason) or type(reason).__name__


def _http_hint(code: int, what: str) -> str | None:
    if code == 404 and what.startswith("template "):
        return (
            "check the template name; GitLab's templates are listed at "
            "https://gitlab.com/gitlab-org/gitlab/-/tree/master/lib/gitlab/ci/templates"
        )
    if code == 404:
        return "check the URL"
    if code in (401, 403):
        return "remote includes are fetched without credentials; the file must be public"
    return None


def check_url(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    raise external_error(
        f"{masked_url(url)}: only https URLs can be included (http only for this machine)",
        "use the https:// form of the address",
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def masked_url(url: str) -> str:
    parts = urlsplit(url) if "://" in url else None
    if parts is None or parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
