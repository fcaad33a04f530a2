#!/usr/bin/env python3
"""Writes tiny test kernels, one per boot format, into the folder given as argument.

Each kernel checks what its boot protocol promises (a register, a structure the loader
built) and reports through QEMU's debug-exit port 0xf4: a write of 0x10 (exit status
33) means the check passed, 0x11 (status 35) that it failed, 0x12 (status 37) that the
kernel was entered at the wrong place. Also writes malformed variants for refusal tests.
"""
import os
import struct
import sys

PASS = bytes([0xB0, 0x10, 0xE6, 0xF4, 0xF4])  # mov al,0x10; out 0xf4,al; hlt
FAIL = bytes([0xB0, 0x11, 0xE6, 0xF4, 0xF4])
WRONG = bytes([0xB0, 0x12, 0xE6, 0xF4, 0xF4])


def checked(*checks):
    """Code running each (test instruction, jump-if-bad opcode) then PASS, else FAIL."""
    code = b""
    jumps = []
    for insn, jcc in checks:
        code += insn + bytes([jcc, 0])
        jumps.append(len(code) - 1)
    code += PASS
    fail_at = len(code)
    code += FAIL
    code = bytearray(code)
    for j in jumps:
        code[j] = fail_at - (j + 1)
    return bytes(code)


JNE, JZ = 0x75, 0x74

MB_MAGIC = 0x1BADB002


def mb_header(flags, aout=None):
    h = struct.pack("<III", MB_MAGIC, flags, (-(MB_MAGIC + flags)) & 0xFFFFFFFF)
    if aout:
        h += struct.pack("<IIIII", *aout)
    return h


# 32-bit multiboot check: EAX = 0x2BADB002 and MBI flags announce the boot loader name.
MB_CODE = checked(
    (bytes([0x3D]) + struct.pack("<I", 0x2BADB002), JNE),   # cmp eax, imm32
    (bytes([0xF7, 0x03]) + struct.pack("<I", 0x200), JZ),   # test dword [ebx], 0x200
)
# PVH: [ebx] is the hvm_start_info magic.
PVH_CODE = checked((bytes([0x81, 0x3B]) + struct.pack("<I", 0x336EC578), JNE))
# Linux 64-bit entry: RSI -> boot_params with the header and type_of_loader = 0xff.
LINUX64_CODE = checked(
    (bytes([0x81, 0xBE]) + struct.pack("<I", 0x202) + b"HdrS", JNE),  # cmp dword [rsi+0x202]
    (bytes([0x80, 0xBE]) + struct.pack("<I", 0x210) + b"\xff", JNE),  # cmp byte [rsi+0x210]
)
# Plain ELF64: only 64-bit mode computes 1 here (in 32-bit mode 0x48 is DEC EAX).
PLAIN64_CODE = checked(
    (bytes([0x48, 0xB8]) + struct.pack("<Q", 1 << 32)     # mov rax, 1<<32
     + bytes([0x48, 0xC1, 0xE8, 0x20])                    # shr rax, 32
     + bytes([0x83, 0xF8, 0x01]), JNE))                   # cmp eax, 1
# Plain ELF32: EAX = EBX = 0.
PLAIN32_CODE = checked(
    (bytes([0x85, 0xC0]), JNE),                           # test eax, eax
    (bytes([0x85, 0xDB]), JNE),                           # test ebx, ebx
)


def elf(is64, entry, segments, notes=b""):
    """segments: list of (paddr, vaddr, data, memsz). Notes go in a PT_NOTE, first in the
    file, so that cutting the file's end damages a segment and leaves the notes whole."""
    ehsz, phsz = (64, 56) if is64 else (52, 32)
    phdrs = ([None] if notes else []) + segments
    off = ehsz + phsz * len(phdrs)
    body = b""
    ph = b""
    for s in phdrs:
        off = (off + 15) & ~15
        data = notes if s is None else s[2]
        pad = off - (ehsz + phsz * len(phdrs)) - len(body)
        body += b"\0" * pad + data
        if s is None:
            fields = (4, off, 0, 0, len(data), 0, 4)
        else:
            fields = (1, off, s[1], s[0], len(data), s[3], 16)
        if is64:
            ph += struct.pack("<IIQQQQQQ", fields[0], 7, fields[1], fields[2], fields[3],
                              fields[4], fields[5], fields[6])
        else:
            ph += struct.pack("<IIIIIIII", fields[0], fields[1], fields[2], fields[3],
                              fields[4], fields[5], 7, fields[6])
        off += len(data)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1, 1]) + b"\0" * 9
    if is64:
        eh = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, ehsz, 0, 0, ehsz, phsz,
                                 len(phdrs), 0, 0, 0)
    else:
        eh = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, entry, ehsz, 0, 0, ehsz, phsz,
                                 len(phdrs), 0, 0, 0)
    return eh + ph + body


def note(name, ntype, desc):
    n = name.encode() + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def bzimage(version=0x020F, xloadflags=1, kernel=b""):
    setup_sects = 4
    k = bytearray(512 * (setup_sects + 1))
    k[0x1F1] = setup_sects
    struct.pack_into("<H", k, 0x1FE, 0xAA55)
    k[0x200] = 0xEB
    k[0x201] = 0x6A
    k[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", k, 0x206, version)
    k[0x211] = 0x01                                   # LOADED_HIGH
    struct.pack_into("<I", k, 0x214, 0x100000)
    struct.pack_into("<I", k, 0x22C, 0x7FFFFFFF)      # initrd_addr_max
    struct.pack_into("<I", k, 0x230, 0x200000)        # kernel_alignment
    k[0x234] = 1                                      # relocatable
    struct.pack_into("<H", k, 0x236, xloadflags)
    struct.pack_into("<I", k, 0x238, 2048)            # cmdline_size
    struct.pack_into("<Q", k, 0x258, 0x1000000)       # pref_address
    struct.pack_into("<I", k, 0x260, 0x100000)        # init_size
    return bytes(k) + kernel


def main():
    out = sys.argv[1]

    def write(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    # multiboot, a.out kludge: header at file offset 0, loaded at 1 MiB
    hdr_len = 32
    aout = mb_header(0x10003, (0x100000, 0x100000, 0, 0, 0x100000 + hdr_len)) + MB_CODE
    write("mb_aout.bin", aout)
    bad = bytearray(aout)
    struct.pack_into("<I", bad, 8, 0x12345678)
    write("mb_badsum.bin", bytes(bad))
    big = mb_header(0x10003, (0x100000, 0x100000, 0x100000 + 0x10000, 0, 0x100000 + hdr_len))
    write("mb_truncated.bin", big + MB_CODE)

    # multiboot ELF32 linked high, loaded low: the entry is translated
    text = mb_header(0x3) + MB_CODE
    write("mb_elf32.elf", elf(False, 0xC0200000 + 12, [(0x200000, 0xC0200000, text, 0x2000)]))

    # PVH ELF64 at 16 MiB, 32-bit entry given by the Xen note
    text = WRONG + PVH_CODE
    notes = note("GNU", 3, b"12345678") + note("Xen", 18, struct.pack("<Q", 0x1000000 + len(WRONG)))
    write("pvh.elf", elf(True, 0xFFFFFFFF81000000, [(0x1000000, 0xFFFFFFFF81000000, text, 0x1000)],
                         notes))

    # bzImage: WRONG at the 32-bit entry, the check at the 64-bit one (+0x200)
    kernel = WRONG + b"\x90" * (0x200 - len(WRONG)) + LINUX64_CODE
    write("bzImage", bzimage(kernel=kernel))
    write("bzImage_old", bzimage(version=0x0201, kernel=kernel))

    # multiboot kernels in low memory, where nestor's boot GDT and page tables used to be
    # fixed: a.out at 0x8000 with bss to 0x20000 (kvm-unit-tests' realmode.flat loads at
    # 32K), and an ELF32 whose segment covers [0x1000, 0x9000). Their code checks the MBI
    # lies outside the image: cmp ebx, end; jb fail (nothing may sit on the image).
    def mb_low_code(end):
        return checked(
            (bytes([0x3D]) + struct.pack("<I", 0x2BADB002), JNE),
            (bytes([0x81, 0xFB]) + struct.pack("<I", end) + bytes([0x0F, 0x93, 0xC0])  # setae al
             + bytes([0x84, 0xC0]), JZ),                                               # test al,al
        )
    code = mb_low_code(0x20000)
    write("mb_low_8000.bin", mb_header(0x10003, (0x8000, 0x8000, 0, 0x20000, 0x8000 + hdr_len))
          + code + b"\xcc" * 0x3000)
    text = mb_header(0x3) + mb_low_code(0x9000)
    write("mb_low_1000.elf", elf(False, 0x1000 + 12, [(0x1000, 0x1000, text, 0x8000)]))
    # plain ELF64 at 0x1000: the identity page tables must go elsewhere
    write("plain64_low.elf", elf(True, 0x1000, [(0x1000, 0x1000, PLAIN64_CODE, 0x8000)]))
    # images over what is not RAM
    write("mb_bios.bin", mb_header(0x10003, (0xE0000, 0xE0000, 0, 0, 0xE0000 + hdr_len)) + MB_CODE)
    write("mb_ebda.bin", mb_header(0x10003, (0x9F000, 0x9F000, 0, 0xA0000, 0x9F000 + hdr_len))
          + MB_CODE)
    write("mb_vga.elf", elf(False, 0xA0000 + 12, [(0xA0000, 0xA0000, text, 0x1000)]))

    write("plain64.elf", elf(True, 0x400000, [(0x400000, 0x400000, PLAIN64_CODE, 0x1000)]))
    write("plain32.elf", elf(False, 0x400000, [(0x400000, 0x400000, PLAIN32_CODE, 0x1000)]))
    # p_filesz > p_memsz
    write("filesz.elf", elf(True, 0x400000, [(0x400000, 0x400000, PLAIN64_CODE, 4)]))
    # segment far outside RAM
    write("outside.elf", elf(True, 0x400000, [(0x7F000000, 0x400000, PLAIN64_CODE, 0x1000)]))


if __name__ == "__main__":
    main()
