"""Starting the real ferrite binary with the arguments a manifest gives it.

The manifests' arguments are taken as they are, except that each port flag becomes 0 (the
server picks a free port and reports it on its ready line) and each --model-repository
becomes examples/models. `Ferrite.address(port)` then maps a port as the manifest names it
(the container port, i.e. the flag's value in the manifest) to where the server listens.

Environment:
    FERRITE_BIN     server binary (default: target/debug/ferrite)
    ORT_DYLIB_PATH  ONNX Runtime library (default: the one in .venv's onnxruntime package)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

from manifests import EXAMPLE_MODELS, ROOT

READY_TIMEOUT_S = 120.0
READY_LINE = re.compile(r"^ferrite ready((?: [a-z]+=\S+)+)$")

# ferrite's port flags, the ready-line key of each, and tritonserver's defaults.
PORT_FLAGS = {"--http-port": "http", "--grpc-port": "grpc", "--metrics-port": "metrics"}
DEFAULT_PORTS = {"--http-port": 8000, "--grpc-port": 8001, "--metrics-port": 8002}
DEFAULT_EXIT_TIMEOUT_S = 30


def split_flags(args: list[str]) -> list[tuple[str, str]]:
    """`--name=value` arguments as (name, value) pairs; any other form is refused, so that
    every flag's value is unambiguous to read (and to replace)."""
    pairs = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if not (arg.startswith("--") and sep):
            raise AssertionError(f"argument {arg!r} is not in the --flag=value form")
        pairs.append((name, value))
    return pairs


def flag_values(args: list[str], name: str) -> list[str]:
    return [value for flag, value in split_flags(args) if flag == name]


def declared_ports(args: list[str]) -> dict[int, str]:
    """The ports the arguments make ferrite listen on, as container port -> ready-line key."""
    ports = {}
    for flag, key in PORT_FLAGS.items():
        values = flag_values(args, flag)
        ports[int(values[-1]) if values else DEFAULT_PORTS[flag]] = key
    return ports


def exit_timeout(args: list[str]) -> int:
    values = flag_values(args, "--exit-timeout-secs")
    return int(values[-1]) if values else DEFAULT_EXIT_TIMEOUT_S


def local_args(args: list[str]) -> list[str]:
    """ARGS with every port flag set to 0 and every repository set to examples/models."""
    result = []
    for flag, value in split_flags(args):
        if flag in PORT_FLAGS:
            value = "0"
        elif flag in ("--model-repository", "--model-store"):
            value = str(EXAMPLE_MODELS)
        result.append(f"{flag}={value}")
    return result


def binary() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("FERRITE_BIN", ROOT / "target" / "debug" / "ferrite"))
    return path if path.is_absolute() else ROOT / path


def ort_library() -> str:
    if "ORT_DYLIB_PATH" in os.environ:
        return os.environ["ORT_DYLIB_PATH"]
    import onnxruntime

    capi = pathlib.Path(onnxruntime.__file__).parent / "capi"
    libs = sorted(capi.glob(f"libonnxruntime.so.{onnxruntime.__version__}"))
    if not libs:
        raise RuntimeError(f"no libonnxruntime.so.{onnxruntime.__version__} in {capi}")
    return str(libs[0])


@dataclasses.dataclass
class Ferrite:
    """A running server started from a manifest's arguments."""

    args: list[str]  # the manifest's arguments
    command: list[str]  # what was run
    process: subprocess.Popen
    ready: dict[str, str]  # ready-line key -> address
    stderr_path: pathlib.Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def address(self, container_port: int) -> str:
        """host:port where the server serves what the manifest calls CONTAINER_PORT."""
        ports = declared_ports(self.args)
        if container_port not in ports:
            raise AssertionError(f"port {container_port} is none of ferrite's ports {sorted(ports)} (args {self.args})")
        key = ports[container_port]
        if key not in self.ready:
            raise AssertionError(f"ferrite serves no {key} (ready line: {self.ready})")
        host, _, port = self.ready[key].rpartition(":")
        if host in ("0.0.0.0", "[::]", "::"):
            host = "127.0.0.1"
        return f"{host}:{port}"

    def get(self, container_port: int, path: str) -> tuple[int, bytes]:
        """HTTP GET; returns (status, body), for error statuses too."""
        url = f"http://{self.address(container_port)}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def _read_stdout(stream, lines: list[str], ready: threading.Event, found: dict[str, str]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        lines.append(line)
        match = READY_LINE.match(line)
        if match and not ready.is_set():
            found.update(part.split("=", 1) for part in match.group(1).split())
            ready.set()
    ready.set()


@contextlib.contextmanager
def run(args: list[str], workdir: pathlib.Path) -> Iterator[Ferrite]:
    """Starts ferrite with the manifest's ARGS (made local), waits for its ready line,
    yields it, then stops it with SIGTERM and requires a clean exit within the
    --exit-timeout-secs of ARGS (what a pod's grace period is sized for)."""
    path = binary()
    if not path.is_file():
        raise AssertionError(
            f"server binary {path} does not exist: build it (cargo build -p ferrite-server) or set FERRITE_BIN"
        )
    command = [str(path), *local_args(args)]
    env = dict(os.environ, ORT_DYLIB_PATH=ort_library())
    stderr_path = workdir / "stderr.log"
    with open(stderr_path, "wb") as stderr_file:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=workdir,
        )
    lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()
    reader = threading.Thread(target=_read_stdout, args=(process.stdout, lines, ready, found), daemon=True)
    reader.start()
    ready.wait(READY_TIMEOUT_S)
    server = Ferrite(args, command, process, found, stderr_path)
    if not found:
        process.kill()
        process.wait()
        raise AssertionError(
            f"ferrite printed no ready line within {READY_TIMEOUT_S:.0f} s (exit code {process.returncode})\n"
            f"command: {' '.join(command)}\nstdout:\n" + "\n".join(lines) + f"\nstderr:\n{server.stderr()}"
        )
    try:
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        limit = exit_timeout(args)
        try:
            code = process.wait(limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"ferrite did not exit within {limit} s of SIGTERM\nstderr:\n{server.stderr()}"
            ) from None
        reader.join(5)
        if code != 0:
            raise AssertionError(f"ferrite exited with code {code} after SIGTERM\nstderr:\n{server.stderr()}")
