"""Warm kernels: a step's kernel forked from a server that has imported the
libraries gives the notebook the same outputs as a new interpreter, in the
same sandbox, and never outlives its launcher."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from reintegration.core.paths import Paths
from reintegration.pipeline import kernel, runner, sandbox, warm

ROOT = Path(__file__).resolve().parents[1]
WARM = warm.enabled()
needs_warm = pytest.mark.skipif(not WARM, reason="no fork or Unix sockets here")

# What a kernel could see differently after a fork: its working directory and
# import path, the step's environment, matplotlib's backend and a figure's
# bytes, the warning filters, the root logger, and whether the libraries were
# already imported (only that line may differ).
PROBE = [
    'city = "rotterdam"\nsize = "small"',
    """import sys
print("warm:", "linearmodels" in sys.modules)""",
    """import hashlib, io, logging, os, warnings
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
here = os.getcwd()
print("cwd:", here == os.environ["PROBE_NOTEBOOKS"], [p for p in sys.path if p in ("", here)])
print("step:", os.environ["REINTEGRATION_STEP"], os.environ["REINTEGRATION_CITY"])
print("backend:", matplotlib.get_backend())
print("root logger:", logging.getLogger().level, len(logging.getLogger().handlers))
import importlib
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from reintegration.disclosure.acro import acro_module
from reintegration.pipeline.warm import PRELOAD
for name in PRELOAD:  # what the steps import, as the server did
    try:
        importlib.import_module(name)
    except ImportError:
        pass
acro_module()
with warnings.catch_warnings(record=True) as caught:  # which warnings the filters let through
    for category in (UserWarning, DeprecationWarning, FutureWarning, ConvergenceWarning,
                     PendingDeprecationWarning, RuntimeWarning):
        for _ in range(2):
            warnings.warn(f"planted {category.__name__}", category)
    np.log(np.zeros(1))
print("warnings shown:", [(w.category.__name__, str(w.message)) for w in caught])
print("argv:", os.path.basename(sys.argv[0]), sys.argv[1])
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot(np.arange(5), np.arange(5) ** 2)
buf = io.BytesIO()
fig.savefig(buf, format="png")
print("png:", hashlib.sha256(buf.getvalue()).hexdigest()[:16])
plt.close(fig)
pd.DataFrame({"a": [1.5, 2.25]})""",
]


# From inside a sandbox, ask every warm server for a kernel without one.
ESCAPE = """import glob, socket
from reintegration.pipeline import warm
served, found = [], glob.glob(str(warm.socket_dir() / "*.sock"))
for where in found:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(where)
        c.settimeout(10)
        warm._send(c, {"args": ["--version"], "cwd": "/", "env": {}, "hide": None,
                       "read_only": []}, [0, 1, 2])
        served.append(warm._recv(c)[0])
    except (OSError, ValueError):
        pass
    finally:
        c.close()
print("servers found:", bool(found))
print("escape:", "served" if served else "refused")"""


def _probe_step(tmp_root, monkeypatch, step: str = "03_panel") -> Paths:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in PROBE]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "reintegration", "language": "python", "display_name": "P"}
    nbformat.write(nb, tmp_root / "notebooks" / f"{step}.ipynb")
    monkeypatch.setenv("REINTEGRATION_BUILD_DIR", str(tmp_root / "build"))
    monkeypatch.setenv("PROBE_NOTEBOOKS", str(tmp_root / "notebooks"))
    return Paths.for_size("small", tmp_root)


def _outputs(path: Path) -> list:
    """Each code cell's outputs, consecutive stream pieces joined (how a
    kernel cuts its stream into messages depends on timing)."""
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outs: list = []
        for out in cell.get("outputs", []):
            if outs and out["output_type"] == "stream" == outs[-1]["output_type"] \
                    and out["name"] == outs[-1]["name"]:
                outs[-1] = {**outs[-1], "text": outs[-1]["text"] + out["text"]}
            else:
                outs.append(dict(out))
        cells.append(outs)
    return cells


@needs_warm
@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_warm_kernel_shows_the_notebook_what_a_new_one_shows(tmp_root, monkeypatch, mode):
    _probe_step(tmp_root, monkeypatch)
    runs = {}
    for wanted in ("off", mode):
        monkeypatch.setenv(warm.MODE_ENV, wanted)
        out = runner.run_step("03_panel", city="rotterdam", size="small", root=tmp_root)
        runs[wanted] = _outputs(out)
    cold, other = runs["off"], runs[mode]
    assert cold[-2][0]["text"] == "warm: False\n"
    assert other[-2][0]["text"] == f"warm: {mode == 'auto'}\n"  # the path really taken
    assert cold[-1] == other[-1]  # everything else, byte for byte
    text = cold[-1][0]["text"]
    assert "cwd: True" in text and "step: 03_panel rotterdam" in text
    assert "('UserWarning', 'planted UserWarning')" in text
    assert "backend: module://matplotlib_inline.backend_inline" in text
    assert "argv: ipykernel_launcher.py -f" in text


@needs_warm
@pytest.mark.skipif(not sandbox.available()[0], reason="no mount namespace here")
def test_a_warm_kernel_runs_in_its_roles_sandbox(tmp_root, monkeypatch):
    from test_sandbox import _outputs as printed_by  # the sandbox test's notebook
    from test_sandbox import _tree

    paths = _tree(tmp_root, monkeypatch)
    nb_path = tmp_root / "notebooks" / "03_panel.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(PROBE[1]))
    nb.cells.insert(2, nbformat.v4.new_code_cell(ESCAPE))
    nbformat.write(nb, nb_path)
    monkeypatch.setenv(sandbox.MODE_ENV, "required")
    monkeypatch.setenv(warm.MODE_ENV, "auto")
    with pytest.raises(runner.StepFailed, match="FileNotFoundError"):
        runner.run_step("03_panel", city="rotterdam", size="small", root=tmp_root)
    from reintegration.core import custody

    text = printed_by(custody.failed_dir(paths, "rotterdam", "researcher") / "03_panel.ipynb")
    assert "warm: True" in text and "cbs rows: 3" in text
    # the servers' folder is not there for it (and a server would refuse it:
    # test_a_server_refuses_a_process_in_another_mount_namespace)
    assert "servers found: False" in text and "escape: refused" in text
    assert "write synthetic_data/small/ttp/rotterdam/koppeltabel.csv : FileNotFoundError" in text


@needs_warm
@pytest.mark.skipif(not sandbox.available()[0], reason="no mount namespace here")
def test_a_server_refuses_a_process_in_another_mount_namespace():
    """Behind the hidden folder, the server's own check: a process in another
    mount namespace that can reach the socket is not forked a kernel (it
    would run outside that process's sandbox)."""
    options = warm.kernel_args([sys.executable, "-Xfrozen_modules=off", "-m",
                                "ipykernel_launcher", "-f", "c"])[0]
    path = warm.socket_dir() / f"{warm.fingerprint(options)}.sock"
    conn = warm._connect(path, options)  # a server for this interpreter runs
    assert conn is not None
    conn.close()
    code = "from reintegration.pipeline import sandbox\nsandbox.enter(sandbox.Plan())\n" + ESCAPE
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "servers found: True" in done.stdout and "escape: refused" in done.stdout


@needs_warm
def test_a_warm_kernel_whose_sandbox_fails_never_runs(tmp_path):
    """The forked kernel enters the sandbox itself; when it cannot, the
    launcher exits 70 with the sandbox's line, as without a server."""
    log = tmp_path / "k.log"
    cmd = [sys.executable, "-m", "reintegration.pipeline.kernel", "--hide",
           str(tmp_path / "not-a-folder"), "--", sys.executable, "-m", "ipykernel_launcher",
           "-f", str(tmp_path / "never-written.json")]
    env = {**os.environ, warm.MODE_ENV: "auto"}
    with log.open("w") as fh:
        done = subprocess.run(cmd, check=False, stderr=fh, env=env, timeout=120)
    assert done.returncode == 70
    assert "sandbox:" in log.read_text(encoding="utf-8")
    assert not (tmp_path / "never-written.json").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_warm
def test_a_warm_kernel_dies_with_its_launcher(tmp_path, monkeypatch):
    """SIGKILL of the launcher (what killing the runner does to it) ends the
    forked kernel too; an interrupt reaches the kernel through the launcher."""
    from test_sandbox import interrupted, printed, started_kernel

    monkeypatch.setenv(warm.MODE_ENV, "auto")
    with started_kernel(kernel.launch_command(None), {}, tmp_path / "k.log") as (km, kc):
        pid_text, was_warm = printed(
            kc, "import os, sys; print(os.getpid(), 'linearmodels' in sys.modules)").split()
        assert was_warm == "True"
        pid = int(pid_text)
        launcher = km.provisioner.process
        assert pid != launcher.pid  # the kernel is the server's child, not the launcher
        assert "interrupted" in interrupted(kc, lambda: os.kill(launcher.pid, signal.SIGINT))
        kc.stop_channels()
        os.kill(launcher.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)


def test_kernel_command_lines_that_can_be_forked():
    exe, ipk = sys.executable, ["-m", "ipykernel_launcher", "-f", "c"]
    assert warm.kernel_args([exe, *ipk]) == ([], ["-f", "c"])
    assert warm.kernel_args([exe, "-Xfrozen_modules=off", *ipk]) == (
        ["-Xfrozen_modules=off"], ["-f", "c"])
    assert warm.kernel_args(["/usr/bin/other-python", *ipk]) is None
    assert warm.kernel_args([exe, "-m", "some_other_kernel", "-f", "c"]) is None
    assert warm.kernel_args(["true"]) is None


def test_a_changed_source_file_or_import_setting_gets_another_server(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    env = {"OMP_NUM_THREADS": "1", "REINTEGRATION_STEP": "03_panel", "MAKEFLAGS": "-j2"}
    first = warm.fingerprint([], env, pkg)
    # the step, the city and make's own variables do not matter to the imports
    assert warm.fingerprint([], {**env, "REINTEGRATION_STEP": "06_effects", "MAKEFLAGS": ""},
                            pkg) == first
    assert warm.fingerprint([], {**env, "OMP_NUM_THREADS": "2"}, pkg) != first
    assert warm.fingerprint(["-Xfrozen_modules=off"], env, pkg) != first
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert warm.fingerprint([], env, pkg) != first


def _template_imports() -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, ast.Import):
                    found |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module)
                    for a in node.names:  # `from package import module`
                        try:
                            __import__(f"{node.module}.{a.name}")
                            found.add(f"{node.module}.{a.name}")
                        except ImportError:
                            pass
    return found


def test_the_server_preloads_every_module_the_templates_import():
    """A module a template imports but the server does not costs every step its
    import again: the list must follow the templates."""
    missing = [m for m in sorted(_template_imports())
               if m not in warm.PRELOAD and not any(p.startswith(m + ".") for p in warm.PRELOAD)]
    assert not missing, f"add to warm.PRELOAD: {missing}"


@needs_warm
def test_launchers_that_start_at_once_share_one_server(tmp_path):
    """Two steps starting together both find no server: both start one, one
    gives way, and both are served by the other."""
    import threading

    path = tmp_path / "s.sock"
    conns: list = []

    def ask() -> None:
        conns.append(warm._connect(path, []))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=warm.START_SECONDS + 10)
    try:
        assert len(conns) == 3 and all(c is not None for c in conns)
        import socket
        import struct

        peers = {struct.unpack("3i", c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
                 for c in conns}
        assert len(peers) == 1  # one server process answered all three
    finally:
        for c in conns:
            if c is not None:
                c.close()


RUNNER = """import asyncio, sys, time
from pathlib import Path
from jupyter_client.blocking import BlockingKernelClient
from reintegration.pipeline import kernel
cls, _ = kernel.manager_class(kernel.launch_command(None), env={}, log=Path(sys.argv[1]))
km = cls(kernel_name="reintegration")
asyncio.run(km.start_kernel())
kc = BlockingKernelClient(connection_file=km.connection_file)
kc.load_connection_file()
kc.start_channels(hb=False)  # no heartbeat: a server may still be starting
kc.wait_for_ready(timeout=60)
out = []
kc.execute_interactive("import os; print(os.getpid())", timeout=60,
                       output_hook=lambda m: out.append(m["content"].get("text", "")))
print("".join(out).strip(), flush=True)
time.sleep(120)"""


@needs_warm
def test_a_warm_kernel_ends_when_its_runner_is_killed(tmp_path):
    """SIGKILL of the runner (make killed) leaves no kernel running on: its
    launcher notices and ends it, as ipykernel's parent poller did."""
    env = {**os.environ, warm.MODE_ENV: "auto"}
    runner_proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path / "k.log")],
                                   stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = runner_proc.stdout.readline()
        pid = int(line)
        assert _alive(pid)
    finally:
        runner_proc.kill()
        runner_proc.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
