"""vSphere tags over the vAPI REST endpoints, read in bulk (list-attached-objects-on-tags).

Newer vCenters offer ``/api/cis/tagging/...``; older ones (and govmomi's
simulator) only ``/rest/com/vmware/cis/tagging/...``. The client logs in to
``/api/session`` and falls back to ``/rest`` when that is absent.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests

from labswitch import tls
from labswitch.config import VCenter
from labswitch.config.secrets import plain
from labswitch.errors import AuthenticationFailed, ConnectionFailed, EndpointError, TLSVerificationFailed, VSphereError

SESSION_HEADER = "vmware-api-session-id"


class TagClient:
    """A vAPI session used as a context manager; logs out on exit."""

    def __init__(self, config: VCenter) -> None:
        parts = urlsplit(config.https_url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.config = config
        self.where = f"vCenter {self.base} tagging API"
        self.http = requests.Session()
        tls.configure_session(self.http, config.tls, self.where)
        self.verify = tls.requests_verify(config.tls)
        self.dialect = "api"

    def __enter__(self) -> TagClient:
        self._login()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if SESSION_HEADER in self.http.headers:
            with contextlib.suppress(EndpointError):  # the session expires on its own
                self._request("DELETE", "/api/session" if self.dialect == "api" else "/rest/com/vmware/cis/session")
        self.http.close()

    def vm_tags(self) -> dict[str, tuple[str, ...]]:
        """Every VM's tags as "Category/Tag", by VM moid: a few calls per tag, none per VM."""
        categories = {cid: self._field(self._get(f"category/{self._id(cid)}"), "name", "category") for cid in self._ids("category")}
        tags = {}
        for tid in self._ids("tag"):
            tag = self._get(f"tag/{self._id(tid)}")
            tags[tid] = f"{categories.get(self._field(tag, 'category_id', 'tag'), '?')}/{self._field(tag, 'name', 'tag')}"
        if not tags:
            return {}
        attached = self._list(
            self._post_action("tag-association", "list-attached-objects-on-tags", {"tag_ids": list(tags)}), "tag-association"
        )
        by_vm: dict[str, list[str]] = defaultdict(list)
        for entry in attached:
            if not isinstance(entry, dict) or entry.get("tag_id") not in tags:
                raise self._shape("tag-association", "objects with a known tag_id and object_ids")
            for obj in self._list(entry.get("object_ids"), "tag-association object_ids"):
                if isinstance(obj, dict) and obj.get("type") == "VirtualMachine" and isinstance(obj.get("id"), str):
                    by_vm[obj["id"]].append(tags[entry["tag_id"]])
        return {moid: tuple(sorted(names)) for moid, names in by_vm.items()}

    def _ids(self, path: str) -> list[str]:
        """A list of ids; null (govmomi's simulator answers an empty list so) is an empty list."""
        ids = self._list(self._get(path), path)
        if not all(isinstance(i, str) for i in ids):
            raise self._shape(path, "a list of ids")
        return ids

    def _list(self, value: Any, what: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._shape(what, "a list")
        return value

    def _field(self, obj: Any, key: str, what: str) -> str:
        if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
            raise self._shape(what, f"an object with a {key}")
        return str(obj[key])

    def _shape(self, what: str, expected: str) -> VSphereError:
        return VSphereError(f"{self.where}: the answer for {what} is not {expected}; is this a vCenter tagging endpoint?")

    def _id(self, ident: str) -> str:
        return ident if self.dialect == "api" else f"id:{ident}"

    def _get(self, path: str) -> Any:
        return self._unwrap(self._request("GET", self._tagging(path)))

    def _post_action(self, path: str, action: str, body: dict[str, Any]) -> Any:
        key = "action" if self.dialect == "api" else "~action"
        return self._unwrap(self._request("POST", self._tagging(path), params={key: action}, json=body))

    def _tagging(self, path: str) -> str:
        return f"/api/cis/tagging/{path}" if self.dialect == "api" else f"/rest/com/vmware/cis/tagging/{path}"

    def _unwrap(self, response: requests.Response) -> Any:
        try:
            data = response.json()
        except ValueError as exc:
            raise VSphereError(f"{self.where}: {response.request.method} {response.url} did not answer JSON") from exc
        return data["value"] if self.dialect == "rest" and isinstance(data, dict) and "value" in data else data

    def _login(self) -> None:
        auth = (self.config.user, plain(self.config.password))
        response = self._request("POST", "/api/session", auth=auth, ok=(200, 201, 404))
        if response.status_code == 404:
            self.dialect = "rest"
            response = self._request("POST", "/rest/com/vmware/cis/session", auth=auth)
        self.http.headers[SESSION_HEADER] = str(self._unwrap(response))

    def _request(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), **kwargs: Any) -> requests.Response:
        try:
            response = self.http.request(method, self.base + path, verify=self.verify, timeout=self.config.timeout, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise TLSVerificationFailed(f"{self.where}: certificate not trusted or not the pinned one; check vcenter.tls") from exc
        except requests.exceptions.RequestException as exc:
            raise ConnectionFailed(f"{self.where}: {type(exc).__name__}; check that vCenter is up") from exc
        if response.status_code == 401:
            raise AuthenticationFailed(
                f"{self.where}: login refused for user {self.config.user!r}; check vcenter.user and vcenter.password"
            )
        if response.status_code not in ok:
            raise VSphereError(f"{self.where}: {method} {path} answered HTTP {response.status_code}")
        return response
