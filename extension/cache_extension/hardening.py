"""Keep the process's memory (cached secrets, the token in its environment) out of core dumps.

Called first thing in main(), before registration and before any value is fetched: the core-size limit
goes to 0 (a core file written by the kernel itself), and the process becomes non-dumpable, which also
covers what the limit cannot: a core_pattern that pipes to a handler (systemd-coredump, apport) ignores
RLIMIT_CORE, but never dumps a non-dumpable process. Non-dumpable also makes /proc/PID/mem, environ and
the like readable by root only (with CAP_SYS_PTRACE), not by other processes of the same uid.

Both steps fail soft: where the platform has neither (not Linux), the extension runs as before and
main() reports why at debug level.

Cost, measured with `python -X importtime` and perf_counter in a fresh `python3 -E -S`: `resource` plus
setrlimit about 0.3 ms; `import ctypes` plus CDLL(None).prctl about 3 ms, the C core of ctypes
(`_ctypes`: dlopen, dlsym, call_function) about 0.45 ms. INIT is billed, so prctl is called through
`_ctypes` directly, with the public `ctypes` as the fallback should a Python lack those functions.
"""

from __future__ import annotations

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def disable_core_dumps() -> list[str]:
    """RLIMIT_CORE to (0, 0) and PR_SET_DUMPABLE to 0. Returns what could not be done (empty on Linux)."""
    problems = []
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, AttributeError, ValueError, OSError) as exc:
        problems.append(f"RLIMIT_CORE not set to 0: {exc}")
    try:
        result = _prctl(PR_SET_DUMPABLE, 0)
        if result != 0:
            problems.append(f"prctl(PR_SET_DUMPABLE, 0) returned {result}")
    except (ImportError, AttributeError, OSError, TypeError, ValueError) as exc:
        problems.append(f"prctl(PR_SET_DUMPABLE) unavailable: {exc}")
    return problems


def _prctl(option: int, arg2: int) -> int:
    """libc's prctl(option, arg2, 0, 0, 0). Raises ImportError, AttributeError or OSError where there is none."""
    return libc_call("prctl", option, arg2, 0, 0, 0)


def libc_call(name: str, *args: int) -> int:
    """A libc function called with int arguments, through _ctypes (see the module's docstring for why).
    Raises ImportError, AttributeError or OSError where there is no such function (not Linux)."""
    import sys

    if not sys.platform.startswith("linux"):
        raise OSError(f"no {name} on {sys.platform}")
    try:
        import _ctypes

        function = _ctypes.dlsym(_ctypes.dlopen(None), name)
        return _ctypes.call_function(function, args)
    except (ImportError, AttributeError):
        import ctypes

        return getattr(ctypes.CDLL(None), name)(*args)
