#!/usr/bin/env python3
"""A probe extension: records what Lambda (or an emulator of it) shows an external extension.

Standard library only, so it runs under any python3. Put it (executable) in /opt/extensions; its file
name is the extension name it registers under. One JSON object a line, each with "kind" and "time"
(epoch seconds), appended to the file named by PROBE_OUTPUT (stdout if unset):

    start     pid, name, env_names: the sorted NAMES of the environment variables it got; env_values: the
              values of the few in PUBLIC_VARIABLES only (Lambda's mode, names, sizes: never a credential)
    register  status, headers, body (JSON if it parses, else text)
    event     status, headers, body of each event/next answer
    exit      reason, code

PROBE_EVENTS: the events to register for, comma-separated (default INVOKE,SHUTDOWN; empty: none).
PROBE_REGISTER_TWICE=1: register a second time right after the first (recorded as kind register, again).
It exits 0 after SHUTDOWN, 1 when register or event/next answers anything but 200.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time

EXTENSIONS_API = "/2020-01-01/extension"
PUBLIC_VARIABLES = ("AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_MAX_CONCURRENCY", "AWS_LAMBDA_LOG_FORMAT",
                    "AWS_REGION", "AWS_DEFAULT_REGION", "TZ", "LANG")


def record(kind: str, **fields) -> None:
    line = json.dumps({"kind": kind, "time": time.time(), **fields}, sort_keys=True) + "\n"
    path = os.environ.get("PROBE_OUTPUT")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())  # one write per line: several probes may share the file
        finally:
            os.close(fd)
    else:
        sys.stdout.write(line)
        sys.stdout.flush()


def initial_environment() -> dict[str, str]:
    """The environment this process was started with: /proc/self/environ, as os.environ may hold what the
    interpreter added itself (LC_CTYPE, by PEP 538's locale coercion)."""
    try:
        with open("/proc/self/environ", "rb") as f:
            entries = [entry.decode(errors="replace").split("=", 1) for entry in f.read().split(b"\0") if entry]
        return {entry[0]: entry[-1] for entry in entries}
    except OSError:
        return dict(os.environ)


def call(method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=None)  # event/next blocks for as long as it likes
    try:
        connection.request(method, EXTENSIONS_API + path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", errors="replace")
        return response.status, dict(response.getheaders()), parsed
    finally:
        connection.close()


def finish(reason: str, code: int) -> None:
    record("exit", reason=reason, code=code)
    sys.exit(code)


def main() -> None:
    name = os.path.basename(sys.argv[0])
    environment = initial_environment()
    record("start", pid=os.getpid(), name=name, env_names=sorted(environment),
           env_values={key: environment[key] for key in PUBLIC_VARIABLES if key in environment})
    events = [event.strip() for event in os.environ.get("PROBE_EVENTS", "INVOKE,SHUTDOWN").split(",") if event.strip()]
    request = {"Lambda-Extension-Name": name, "Content-Type": "application/json"}
    status, headers, body = call("POST", "/register", request, json.dumps({"events": events}).encode())
    record("register", status=status, headers=headers, body=body, events=events)
    if status != 200:
        finish("register failed", 1)
    identifier = headers.get("Lambda-Extension-Identifier", "")
    if os.environ.get("PROBE_REGISTER_TWICE") == "1":
        status, headers, body = call("POST", "/register", request, json.dumps({"events": events}).encode())
        record("register", status=status, headers=headers, body=body, events=events, again=True)
    while True:
        status, headers, body = call("GET", "/event/next", {"Lambda-Extension-Identifier": identifier})
        record("event", status=status, headers=headers, body=body)
        if status != 200:
            finish("event/next failed", 1)
        if isinstance(body, dict) and body.get("eventType") == "SHUTDOWN":
            finish("shutdown", 0)


if __name__ == "__main__":
    main()
