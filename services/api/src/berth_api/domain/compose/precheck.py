"""What is checked on the compose text before the parser runs: pure.

The parser reads files a compose file names (``include``, ``extends.file``, ``env_file``, ``label_file``,
the ``file`` of configs; the ``file`` of a secret it only resolves, and Berth takes a secret's value from the
application's variables: ``secret_files``). The api runs it with no file of the user's around, but a name such as
``/etc/passwd`` would still be read from the api's server, so these keys are refused here, by name, before
the parser ever sees the text, and so is a service named twice (named here: the parser says only which
line). The order of the services in the file is read here too (the normalised model
sorts them; Berth's default host goes to the first service with a port, in the file's order).
"""

from __future__ import annotations

from typing import Any

import yaml

from berth_api.domain.compose.keys import ComposeRefusal
from berth_api.domain.yaml12 import yaml_1_2

FILE_KEYS = {
    "env_file": "Berth's variables are the environment: set them on the application",
    "label_file": "Berth labels containers itself",
}


class _Loader(yaml.SafeLoader):
    """A safe loader (no Python objects) that reads the text as compose does (YAML 1.2 plain scalars)."""


yaml_1_2(_Loader)


def _services_once(root: Any) -> None:
    """A service named twice is refused naming it (a YAML loader keeps the last one silently)."""
    if not isinstance(root, yaml.MappingNode):
        return
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "services" and isinstance(value, yaml.MappingNode):
            seen: dict[str, int] = {}
            for name, _ in value.value:
                if not isinstance(name, yaml.ScalarNode):
                    continue
                line = name.start_mark.line + 1
                if name.value in seen:
                    raise ComposeRefusal(
                        f"services/{name.value}",
                        f"the service {name.value} is defined twice (lines {seen[name.value]} and {line})",
                    )
                seen[name.value] = line


MAX_NODES = 100_000


def _expanded(root: Any) -> int:
    """How many nodes the document has with every alias expanded (an alias is the anchored node itself,
    so nested aliases multiply: a few hundred bytes can stand for billions of nodes)."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a cycle (not valid YAML for compose) counts once
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, MAX_NODES + 1)
        return sizes[id(node)]

    return size(root) if root is not None else 0


def load(text: str) -> Any:
    """The file as compose reads it (YAML 1.2 plain scalars); ``ComposeRefusal`` when it is not valid YAML."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        if _expanded(root) > MAX_NODES:
            raise ComposeRefusal("inline", f"the file expands to more than {MAX_NODES} YAML nodes (aliases)")
        _services_once(root)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ComposeRefusal("inline", "the file nests too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ComposeRefusal("inline", f"{problem}{where}") from None


def precheck(text: str) -> list[str]:
    """The service names in the file's order; raises ``ComposeRefusal`` for a key that reads a file."""
    data = load(text)
    if not isinstance(data, dict):
        raise ComposeRefusal("inline", "a compose file is a mapping with a services key")
    if "include" in data:
        raise ComposeRefusal("include", "Berth reads one compose file: merge the included files into it")
    configs = data.get("configs")
    for name, entry in configs.items() if isinstance(configs, dict) else []:
        if isinstance(entry, dict) and ("file" in entry or "environment" in entry):
            raise ComposeRefusal(
                f"configs/{name}",
                "compose configs are not carried: give the file in compose.files and mount it as ./files/<path>",
            )
    services = data.get("services")
    if not isinstance(services, dict):
        raise ComposeRefusal("services", "a compose file needs a services mapping")
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        for key, why in FILE_KEYS.items():
            if key in svc:
                raise ComposeRefusal(f"services/{name}/{key}", f"a file of the server is never read: {why}")
        extends = svc.get("extends")
        if isinstance(extends, dict) and "file" in extends:
            raise ComposeRefusal(
                f"services/{name}/extends/file", "Berth reads one compose file: extend a service of the same file"
            )
    return [str(n) for n in services]
