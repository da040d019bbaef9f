"""A busybox base image for the scheduler's tests, made locally (no registry): busybox-static in a rootfs.

Uses the shared helper (tests/support/images.py) when another part of the suite provides it; otherwise
builds ``berth-test/scheduler-busybox:<digest>`` from the host's static busybox with ``docker import``,
cached by tag.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
REPO = "berth-test/scheduler-busybox"


def _busybox() -> Path:
    for c in BUSYBOX_CANDIDATES:
        p = Path(c)
        if p.exists():
            return p
    raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({a.strip() for a in out.splitlines() if a.strip() and "/" not in a and a.strip() != "busybox"})


def _rootfs_tar(busybox: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "www", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        data = busybox.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in _applets(busybox):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name, text in {
            "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        }.items():
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0


def busybox_image() -> str:
    """The tag of a local busybox image (built once, then cached by tag)."""
    try:  # prefer the suite-wide helper once it exists
        from tests.support import images as shared  # type: ignore[attr-defined]

        for name in ("busybox_image", "ensure_busybox_image", "busybox"):
            fn = getattr(shared, name, None)
            if callable(fn):
                tag = fn()
                if isinstance(tag, str) and _exists(tag):
                    return tag
    except ImportError:
        pass
    busybox = _busybox()
    digest = hashlib.sha256(busybox.read_bytes()).hexdigest()[:12]
    tag = f"{REPO}:{digest}"
    if _exists(tag):
        return tag
    if shutil.which("docker") is None:
        raise RuntimeError("the docker client is not installed")
    subprocess.run(
        ["docker", "import", "--change", 'CMD ["sh"]', "--change", "LABEL berth.test=scheduler", "-", tag],
        input=_rootfs_tar(busybox),
        capture_output=True,
        check=True,
    )
    return tag
