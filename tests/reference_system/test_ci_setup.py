"""`.ci/setup` installs what the reference system's benchmark compares against.

`python -m reference_system.bench` skipped etcd on a fresh machine because
the setup never installed `etcd-server`; and installing it must not leave
Debian's etcd service running on 127.0.0.1:2379/2380, which the harness's own
etcd clusters and a developer's tests may want. These checks read the script
(running it needs root and the network).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parents[2] / ".ci" / "setup"


def _apt_packages() -> list[str]:
    match = re.search(r"^APT_PACKAGES=\(([^)]*)\)", SETUP.read_text(), re.MULTILINE)
    assert match, "APT_PACKAGES=(...) not found in .ci/setup"
    return [word for word in match.group(1).split() if not word.startswith("$")]


def test_setup_installs_etcd_server_for_the_benchmark() -> None:
    assert "etcd-server" in _apt_packages()
    assert {"haproxy", "debootstrap"} <= set(_apt_packages())


def test_setup_keeps_package_services_from_starting() -> None:
    text = SETUP.read_text()
    # policy-rc.d exit 101 denies invoke-rc.d and deb-systemd-invoke starts during install...
    assert "policy-rc.d" in text and "exit 101" in text
    install = text.index("apt-get install")
    assert text.index("policy-rc.d") < install
    # ...and the etcd service is disabled for boot, under systemd or sysvinit.
    assert "systemctl disable --now etcd.service" in text
    assert "update-rc.d etcd disable" in text


def test_setup_is_valid_bash() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run([bash, "-n", str(SETUP)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
