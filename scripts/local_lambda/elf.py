"""What the dynamic loader reads from an ELF file: its interpreter, soname, needed libraries, and symbol versions.

Enough to check, without running anything, that a bundle resolves every library it needs inside itself and
that each library defines every version asked of it (GLIBC_2.35, ...): the standalone build carries its own C
library and loader, and a version need that nothing in the bundle defines would stop it at start.
64-bit little-endian ELF only (x86_64 and aarch64, the architectures Lambda runs).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"\x7fELF"
PT_INTERP = 3
SHT_DYNAMIC = 6
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERNEED = 0x6FFFFFFE
DT_NEEDED, DT_SONAME = 1, 14
VER_FLG_BASE, VER_FLG_WEAK = 0x1, 0x2
MACHINES = {62: "x86_64", 183: "aarch64"}


class NotElf64(ValueError):
    """Not a 64-bit little-endian ELF file."""


@dataclass
class ElfInfo:
    path: Path
    machine: str
    interp: str | None = None
    soname: str | None = None
    needed: list[str] = field(default_factory=list)
    # file name -> [(version name, weak)]: .gnu.version_r
    version_needs: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)
    # the versions this file defines (not its own base name): .gnu.version_d
    version_defs: set[str] = field(default_factory=set)


def is_elf(path: Path) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


def read(path: Path) -> ElfInfo:
    data = Path(path).read_bytes()
    if data[:4] != MAGIC or data[4] != 2 or data[5] != 1:
        raise NotElf64(f"{path}: not a 64-bit little-endian ELF file")
    (_, _, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = \
        struct.unpack_from("<16sHHIQQQIHHHHHH", data, 0)
    info = ElfInfo(Path(path), MACHINES.get(machine, str(machine)))
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == PT_INTERP:
            info.interp = data[p_offset:p_offset + p_filesz].split(b"\0", 1)[0].decode()
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

    def string(table: int, offset: int) -> str:
        start = sections[table][4] + offset
        return data[start:data.index(b"\0", start)].decode()

    for _, sh_type, _, _, offset, size, link, count, _, _ in sections:
        if sh_type == SHT_DYNAMIC:
            for entry in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, entry)
                if tag == DT_NEEDED:
                    info.needed.append(string(link, value))
                elif tag == DT_SONAME:
                    info.soname = string(link, value)
        elif sh_type == SHT_GNU_VERNEED:
            entry = offset
            for _ in range(count):
                _, cnt, file, aux, next_entry = struct.unpack_from("<HHIII", data, entry)
                versions = info.version_needs.setdefault(string(link, file), [])
                position = entry + aux
                for _ in range(cnt):
                    _, flags, _, name, next_aux = struct.unpack_from("<IHHII", data, position)
                    versions.append((string(link, name), bool(flags & VER_FLG_WEAK)))
                    position += next_aux
                entry += next_entry
        elif sh_type == SHT_GNU_VERDEF:
            entry = offset
            for _ in range(count):
                _, flags, _, _, _, aux, next_entry = struct.unpack_from("<HHHHIII", data, entry)
                if not flags & VER_FLG_BASE:
                    info.version_defs.add(string(link, struct.unpack_from("<I", data, entry + aux)[0]))
                entry += next_entry
    return info


def glibc_version(name: str) -> tuple[int, ...] | None:
    """(2, 35) for "GLIBC_2.35"; None for another name (GLIBC_PRIVATE, OPENSSL_3.0.0...)."""
    prefix, _, number = name.partition("_")
    if prefix != "GLIBC" or not number.replace(".", "").isdigit():
        return None
    return tuple(int(part) for part in number.split("."))


def problems(library_dir: Path, files: list[Path]) -> list[str]:
    """What would stop `files` from loading with `library_dir` as the only library path: a needed library
    missing from it, or a version a library is asked for that it does not define (weak needs excepted)."""
    found: list[str] = []
    cache: dict[Path, ElfInfo] = {}

    def info(path: Path) -> ElfInfo:
        if path not in cache:
            cache[path] = read(path)
        return cache[path]

    for path in files:
        elf = info(path)
        for name in elf.needed:
            if not (library_dir / name).is_file():
                found.append(f"{path.name} needs {name}, which is not in {library_dir}")
        for name, versions in elf.version_needs.items():
            provider = library_dir / name
            if not provider.is_file():
                continue  # reported above
            defined = info(provider).version_defs
            for version, weak in versions:
                if version not in defined and not weak:
                    found.append(f"{path.name} needs {version} of {name}, which defines only up to "
                                 f"{max(defined, key=lambda v: glibc_version(v) or (0,), default='nothing')}")
    return found
