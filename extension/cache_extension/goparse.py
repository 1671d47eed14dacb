"""Go-compatible parsing of environment values.

The original extension is written in Go and documents its settings in Go's terms
(`time.ParseDuration`, `strconv.ParseBool`), so users' existing values must mean the
same thing here. A bad duration keeps Go's wording (it names the faulty part); a bad boolean lists
the accepted spellings instead of Go's "invalid syntax".
"""

from __future__ import annotations

# Nanoseconds per unit; both micro signs are accepted, as in Go.
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

_MAX_NS = (1 << 63) - 1  # a Go time.Duration is an int64 count of nanoseconds
_DIGITS = "0123456789"   # ASCII only: str.isdigit() would also accept e.g. Arabic-Indic digits

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_duration(text: str) -> float:
    """Parse a Go duration ("30s", "1h30m", "-1.5h", "300ms") and return seconds."""
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {_time_quote(text)}")

    total_ns = 0
    i, n = 0, len(s)
    while i < n:
        if s[i] != "." and s[i] not in _DIGITS:
            raise ValueError(f"time: invalid duration {_time_quote(text)}")
        start = i
        while i < n and s[i] in _DIGITS:
            i += 1
        whole = s[start:i]
        frac = ""
        if i < n and s[i] == ".":
            i += 1
            start = i
            while i < n and s[i] in _DIGITS:
                i += 1
            frac = s[start:i]
        if not whole and not frac:  # "." or ".s"
            raise ValueError(f"time: invalid duration {_time_quote(text)}")

        start = i
        while i < n and s[i] != "." and s[i] not in _DIGITS:
            i += 1
        unit = s[start:i]
        if not unit:
            raise ValueError(f"time: missing unit in duration {_time_quote(text)}")
        scale = _UNITS.get(unit)
        if scale is None:
            raise ValueError(f"time: unknown unit {_time_quote(unit)} in duration {_time_quote(text)}")

        # Anything past ~20 digits is either an overflow (whole) or below 1 ns (frac).
        if len(whole.lstrip("0")) > 20:
            raise ValueError(f"time: invalid duration {_time_quote(text)}")
        frac = frac[:24]
        total_ns += int(whole or "0") * scale
        if frac:
            total_ns += int(frac) * scale // 10 ** len(frac)  # truncates below 1 ns, like Go
        if total_ns > _MAX_NS + (1 if negative else 0):
            raise ValueError(f"time: invalid duration {_time_quote(text)}")

    return (-total_ns if negative else total_ns) / 1e9


def parse_bool(text: str) -> bool:
    """Parse a boolean with exactly the spellings Go's strconv.ParseBool accepts (the error lists them)."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(BOOL_HINT)


# What a bad boolean says: the spellings accepted, not Go's "strconv.ParseBool: ... invalid syntax".
BOOL_HINT = "must be true or false (accepted: 1, t, T, TRUE, true, True and 0, f, F, FALSE, false, False)"
# Appended to a bad duration's message, which keeps Go's wording (it names the faulty part).
DURATION_HINT = "use a Go duration such as 30s, 5m or 1h30m (units: ns, us, ms, s, m, h)"


def quote(text: str) -> str:
    """Double-quote text roughly as Go's strconv.Quote does (printable kept, rest escaped)."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_NAMED_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _time_quote(text: str) -> str:
    # Go's time package quotes on its own: ASCII kept, anything else as \x escapes of its UTF-8 bytes.
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif " " <= ch < "\x80":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
    out.append('"')
    return "".join(out)
