"""One malloc arena for the whole process, set first thing in main(), before any thread exists.

glibc gives each thread that allocates its own arena (up to 8 per CPU), and memory freed in one arena is not
reused by the others: the fetch threads that parse botocore's models and the AWS answers each keep pages of
their own. The extension's threads take turns on the interpreter lock anyway, so one arena costs them
nothing, and RSS after INIT's prefetch is 0.3-0.4 MiB lower (3 items: 40.2 -> 39.9 MiB, median of 5
launches; the same as MALLOC_ARENA_MAX=1, which Lambda does not let an extension set for itself).
"""

from __future__ import annotations

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def one_arena() -> str | None:
    """mallopt(M_ARENA_MAX, 1); None when done, else why not (not glibc, not Linux)."""
    from .hardening import libc_call

    try:
        if libc_call("mallopt", M_ARENA_MAX, 1) != 1:
            return "mallopt(M_ARENA_MAX, 1) refused"
    except (ImportError, AttributeError, OSError, TypeError, ValueError) as exc:
        return f"mallopt unavailable: {exc}"
    return None
