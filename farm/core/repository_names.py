"""A repository's name as farm keeps it: ``host/path``, whatever URL it was cloned by."""

from __future__ import annotations

import re

# [user@]host:path, git's scp-like syntax (a one-letter "host" is a Windows drive).
_SCP_LIKE = re.compile(r"^(?:[^@/]*@)?(?P<host>[^:/]{2,}):(?!//)(?P<path>.+)$")


def repository_name(url: str) -> str:
    """A remote URL (or a name given by hand) as ``host/path``, without credentials.

    ``https://user:token@github.com/org/repo.git``, ``git@github.com:org/repo`` and
    ``ssh://git@github.com:22/org/repo.git`` are all ``github.com/org/repo``; a
    local path stays a path, a plain name stays as it is. Query strings and
    fragments are dropped: forges put tokens there too.
    """
    text = url.strip()
    if "://" in text:
        scheme, rest = text.split("://", 1)
        rest = re.split(r"[?#]", rest, maxsplit=1)[0]
        if scheme.lower() == "file":
            name = rest
        else:
            if "@" in rest:
                # Everything to the last "@" is user info, however many "/" or "@" a
                # password holds: a user name alone may be a token (https://TOKEN@host).
                rest = rest.rsplit("@", 1)[1]
            host, _, path = rest.partition("/")
            if scheme.lower() in ("ssh", "git+ssh", "ssh+git"):
                host = host.split(":", 1)[0]  # the port: HTTPS clones name none
            name = f"{host}/{path}" if path else host
    else:
        match = _SCP_LIKE.match(text)
        name = f"{match['host']}/{match['path'].lstrip('/')}" if match else text
    name = name.rstrip("/")
    if name.endswith(".git"):
        name = name[: -len(".git")].rstrip("/")
    return name or text


__all__ = ["repository_name"]
