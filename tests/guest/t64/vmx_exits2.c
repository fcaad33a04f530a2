/* VM exits caused by instructions in L2, part 2 (SDM 26.1.2-26.1.3, 28.2.1, 28.2.5):
 * I/O (unconditional I/O exiting, I/O bitmaps A and B, accesses spanning a port whose
 * bit is set, wrap past FFFFh, IN/OUT with an immediate or DX, INS/OUTS with REP: the
 * qualification, guest-linear address and instruction information, the exit coming
 * before the string's memory faults, the I/O-permission #GP coming before the exit),
 * descriptor-table exiting (SGDT/SIDT/LGDT/LIDT/SLDT/STR/LLDT/LTR with their instruction
 * information and displacement), every VMX instruction executed in L2 (reason,
 * displacement, instruction information), and INVPCID (#UD without "enable INVPCID",
 * an exit with INVLPG exiting), and in an L2 in 32-bit protected mode: 32- and 16-bit
 * address sizes, segment bases and 32-bit wrap in qualifications and guest-linear
 * addresses, SGDT's operand size.
 * guest: cpu=max name=vmx-exits2 */
#include "vmx.h"

#define INTR_UD vmx_hw_exc_info(6, false)
#define INTR_GP vmx_hw_exc_info(13, true)

static u8 io_bitmaps[2][4096] __attribute__((aligned(4096)));
static u8 buf[256] __attribute__((aligned(16)));
static volatile u16 lmsw_word;

static u64 qual(void) { return vmread(F_EXIT_QUAL); }
static u64 len(void) { return vmread(F_EXIT_INSN_LEN); }
static u32 info(void) { return (u32)vmread(F_EXIT_INSN_INFO); }

/* ---- I/O ---- */
VMX_L2_CODE(l2_out_imm, "outb %al, $0x80");
VMX_L2_CODE(l2_in_dx_l, "inl (%dx), %eax");
VMX_L2_CODE(l2_in_dx_w, "inw (%dx), %ax");
VMX_L2_CODE(l2_in_dx_b, "inb (%dx), %al");
VMX_L2_CODE(l2_in_imm_b, "inb $0x80, %al");
VMX_L2_CODE(l2_rep_insb, "rep insb (%dx), %es:(%rdi)");
VMX_L2_CODE(l2_rep_outsw_fs, "rep outsw %fs:(%rsi), (%dx)");
VMX_L2_CODE(l2_outsb_a32, "addr32 outsb (%esi), (%dx)");
VMX_L2_CODE(l2_insl, "insl (%dx), %es:(%rdi)");
VMX_L2_CODE(l2_outsb, "outsb (%rsi), (%dx)");

enum { IOQ_IN = 1 << 3, IOQ_STRING = 1 << 4, IOQ_REP = 1 << 5, IOQ_IMM = 1 << 6 };

static void bit_set(u32 port) { io_bitmaps[port >> 15][(port & 0x7fff) / 8] |= (u8)(1u << (port & 7)); }

/* L2 code with I/O controls; RDX = port */
static long io_run(const void *code, u32 proc, u16 port)
{
    vmx_setup_l2(code, proc, 0);
    vmwrite(F_IO_BITMAP_A, (u64)(ulong)io_bitmaps[0]);
    vmwrite(F_IO_BITMAP_B, (u64)(ulong)io_bitmaps[1]);
    vmwrite(F_EXC_BITMAP, 1u << 13 | 1u << 14);
    vmx_gregs[2] = port;
    return vmx_run();
}

static void io(void)
{
    memset(io_bitmaps, 0, sizeof(io_bitmaps));
    TEST_EQ(io_run(l2_in_imm_b, 0, 0), R_VMCALL, "IN without I/O controls: no exit");
    TEST_EQ(io_run(l2_out_imm, PROC_UNCOND_IO, 0), R_IO, "OUT imm8 with unconditional I/O exiting");
    TEST_EQ(qual(), 0x80ull << 16 | IOQ_IMM | 0, "qualification: port 80h, immediate, OUT, 1 byte");
    TEST_EQ(len(), 2, "its length");
    TEST_EQ(io_run(l2_in_dx_l, PROC_UNCOND_IO, 0x1234), R_IO, "IN EAX, DX with unconditional I/O exiting");
    TEST_EQ(qual(), 0x1234ull << 16 | IOQ_IN | 3, "qualification: port 1234h, DX, IN, 4 bytes");
    TEST_EQ(len(), 1, "its length");
    TEST_EQ(io_run(l2_in_dx_w, PROC_UNCOND_IO, 0x70), R_IO, "IN AX, DX");
    TEST_EQ(qual(), 0x70ull << 16 | IOQ_IN | 1, "qualification: 2 bytes");
    TEST_EQ(len(), 2, "its length (66h prefix)");

    /* bitmaps: A for 0-7FFFh, B for 8000h-FFFFh; unconditional I/O exiting ignored */
    bit_set(0x80);
    bit_set(0x8001);
    bit_set(0x7ffd);
    TEST_EQ(io_run(l2_in_imm_b, PROC_IO_BITMAPS | PROC_UNCOND_IO, 0), R_IO, "bitmap A: port 80h exits");
    TEST_EQ(io_run(l2_in_dx_b, PROC_IO_BITMAPS | PROC_UNCOND_IO, 0x81), R_VMCALL,
            "bitmap A: port 81h, bit clear: no exit (unconditional I/O exiting ignored)");
    TEST_EQ(io_run(l2_in_dx_b, PROC_IO_BITMAPS, 0x8001), R_IO, "bitmap B: port 8001h exits");
    TEST_EQ(qual(), 0x8001ull << 16 | IOQ_IN, "qualification: port 8001h");
    TEST_EQ(io_run(l2_in_dx_b, PROC_IO_BITMAPS, 0x0001), R_VMCALL, "port 1 (8001h's twin in A): no exit");
    TEST_EQ(io_run(l2_in_dx_b, PROC_IO_BITMAPS, 0xfffd), R_VMCALL, "port FFFDh (7FFDh's twin in B): no exit");
    TEST_EQ(io_run(l2_in_dx_b, PROC_IO_BITMAPS, 0x7ffc), R_VMCALL, "port 7FFCh, bit clear: no exit");
    TEST_EQ(io_run(l2_in_dx_l, PROC_IO_BITMAPS, 0x7ffa), R_IO, "4 bytes from 7FFAh touch 7FFDh: exit");
    TEST_EQ(io_run(l2_in_dx_w, PROC_IO_BITMAPS, 0x7ffe), R_VMCALL, "2 bytes from 7FFEh: no exit");
    TEST_EQ(io_run(l2_in_dx_w, PROC_IO_BITMAPS, 0x8000), R_IO, "2 bytes from 8000h touch 8001h: exit");
    bit_set(0x8000);
    TEST_EQ(io_run(l2_in_dx_w, PROC_IO_BITMAPS, 0x7fff), R_IO, "2 bytes from 7FFFh touch 8000h in B: exit");
    TEST_EQ(io_run(l2_in_dx_b, PROC_IO_BITMAPS, 0xfffe), R_VMCALL, "port FFFEh, bit clear: no exit");
    TEST_EQ(io_run(l2_in_dx_w, PROC_IO_BITMAPS, 0xfffe), R_VMCALL, "2 bytes from FFFEh: no exit");
    TEST_EQ(io_run(l2_in_dx_l, PROC_IO_BITMAPS, 0xfffe), R_IO, "4 bytes from FFFEh wrap past FFFFh: exit");
    TEST_EQ(qual(), 0xfffeull << 16 | IOQ_IN | 3, "qualification: port FFFEh, 4 bytes");
    memset(io_bitmaps, 0, sizeof(io_bitmaps));

    /* string I/O */
    vmx_setup_l2(l2_rep_insb, PROC_UNCOND_IO, 0);
    vmx_gregs[2] = 0x80;
    vmx_gregs[7] = (u64)(ulong)buf;
    vmx_gregs[1] = 4;
    TEST_EQ(vmx_run(), R_IO, "REP INSB with unconditional I/O exiting");
    TEST_EQ(qual(), 0x80ull << 16 | IOQ_REP | IOQ_STRING | IOQ_IN, "qualification: port 80h, REP, string, IN");
    TEST_EQ(vmread(F_GUEST_LINEAR), (u64)(ulong)buf, "guest-linear address: ES:RDI");
    TEST_EQ(info() & 0x38380, 2u << 7 | 0u << 15, "instruction information: 64-bit addresses (ES)");
    TEST_EQ(len(), 2, "its length");
    TEST_EQ(vmx_gregs[1], 4, "at the first element (RCX 4)");

    vmx_setup_l2(l2_rep_outsw_fs, PROC_UNCOND_IO, 0);
    vmwrite(F_GUEST_FS_BASE, 0x200000);
    vmx_gregs[2] = 0x80;
    vmx_gregs[6] = 0x10;
    vmx_gregs[1] = 2;
    TEST_EQ(vmx_run(), R_IO, "REP OUTSW FS:");
    TEST_EQ(qual(), 0x80ull << 16 | IOQ_REP | IOQ_STRING | 1, "qualification: REP, string, OUT, 2 bytes");
    TEST_EQ(vmread(F_GUEST_LINEAR), 0x200010, "guest-linear address: FS base + RSI");
    TEST_EQ(info() & 0x38380, 2u << 7 | 4u << 15, "instruction information: 64-bit addresses, FS");
    TEST_EQ(len(), 4, "its length");

    vmx_setup_l2(l2_outsb_a32, PROC_UNCOND_IO, 0);
    vmx_gregs[2] = 0x80;
    vmx_gregs[6] = 0xffffffff00001000ull;
    TEST_EQ(vmx_run(), R_IO, "OUTSB with a 32-bit address size");
    TEST_EQ(qual(), 0x80ull << 16 | IOQ_STRING, "qualification: string, OUT, no REP");
    TEST_EQ(vmread(F_GUEST_LINEAR), 0x1000, "guest-linear address: ESI");
    TEST_EQ(info() & 0x38380, 1u << 7 | 3u << 15, "instruction information: 32-bit addresses, DS");

    vmx_setup_l2(l2_insl, PROC_UNCOND_IO, 0);
    vmwrite(F_EXC_BITMAP, 1u << 13 | 1u << 14);
    vmx_gregs[2] = 0x80;
    vmx_gregs[7] = 0x8000000000000000ull;
    TEST_EQ(vmx_run(), R_IO, "INSD to a non-canonical address: the exit comes before the #GP");
    TEST_EQ(qual(), 0x80ull << 16 | IOQ_STRING | IOQ_IN | 3, "qualification: string, IN, 4 bytes");
    vmx_setup_l2(l2_outsb, PROC_UNCOND_IO, 0);
    vmwrite(F_EXC_BITMAP, 1u << 13 | 1u << 14);
    vmx_gregs[2] = 0x80;
    vmx_gregs[6] = 0x0000800000000000ull;
    TEST_EQ(vmx_run(), R_IO, "OUTSB from a non-canonical address: the exit comes before the #GP");
    vmx_setup_l2(l2_outsb, 0, 0);
    vmwrite(F_EXC_BITMAP, 1u << 13 | 1u << 14);
    vmx_gregs[2] = 0x80;
    vmx_gregs[6] = 0x0000800000000000ull;
    TEST_EQ(vmx_run(), R_EXC_NMI, "OUTSB from a non-canonical address without exiting: #GP");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_GP, "the #GP");

    vmx_setup_l2(l2_rep_insb, PROC_UNCOND_IO, 0);
    vmx_gregs[2] = 0x80;
    vmx_gregs[7] = 0x8000000000000000ull;
    vmx_gregs[1] = 0;
    TEST_EQ(vmx_run(), R_IO, "REP INSB with RCX 0 exits too");
    TEST_EQ(qual(), 0x80ull << 16 | IOQ_REP | IOQ_STRING | IOQ_IN, "qualification: REP, string, IN");

    vmx_setup_l2(l2_rep_insb, 0, 0);
    vmx_gregs[2] = 0x80;
    vmx_gregs[7] = (u64)(ulong)buf;
    vmx_gregs[1] = 3;
    TEST_EQ(vmx_run(), R_VMCALL, "REP INSB without I/O controls: no exit");
    TEST_EQ(vmx_gregs[1], 0, "all elements done");

    /* the I/O permission check (CPL 3, IOPL 0, no TSS bitmap) comes first */
    vmx_setup_l2(l2_in_imm_b, PROC_UNCOND_IO, 0);
    vmx_guest_cpl3();
    vmwrite(F_EXC_BITMAP, 1u << 13);
    TEST_EQ(vmx_run(), R_EXC_NMI, "IN at CPL 3 above IOPL with unconditional I/O exiting: #GP");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_GP, "the #GP");
    vmx_setup_l2(l2_in_imm_b, PROC_UNCOND_IO, 0);
    vmx_guest_cpl3();
    vmwrite(F_GUEST_RFLAGS, 0x3002);
    vmwrite(F_EXC_BITMAP, 1u << 13);
    TEST_EQ(vmx_run(), R_IO, "IN at CPL 3 with IOPL 3: exit");
}

/* ---- descriptor-table exiting ---- */
VMX_L2_CODE(l2_sgdt, "sgdt 0x10(%rax)");
VMX_L2_CODE(l2_sidt, "sidt (%rbx,%rsi,2)");
VMX_L2_CODE(l2_lgdt, "lgdt 0x20(%rsp)");
VMX_L2_CODE(l2_lidt, "lidt %gs:-8(%rcx,%rdx,8)");
VMX_L2_CODE(l2_sldt, "sldt %eax");
VMX_L2_CODE(l2_str, "str 0x8(%rcx)");
VMX_L2_CODE(l2_lldt, "lldt %dx");
VMX_L2_CODE(l2_ltr, "ltr %r9w");

/* defined fields of the instruction information with a memory operand (scaling, address
 * size, mem/reg, segment, index, base and their invalid bits, identity), and with a
 * register operand (reg1, mem/reg, identity) */
#define INFO_MEM 0x3fff8783u
#define INFO_REG 0x30000478u
#define INFO_NO_INDEX (1u << 22)
#define INFO_SEG(s) ((u32)(s) << 15)
#define INFO_INDEX(r) ((u32)(r) << 18)
#define INFO_BASE(r) ((u32)(r) << 23)
#define INFO_A64 (2u << 7)
enum { S_ES, S_CS, S_SS, S_DS, S_FS, S_GS };

static long desc_run(const void *code, bool exiting)
{
    vmx_setup_l2(code, 0, exiting ? PROC2_DESC : PROC2_WBINVD);
    vmx_gregs[0] = (u64)(ulong)buf - 0x10;
    vmx_gregs[3] = (u64)(ulong)buf;
    vmx_gregs[1] = (u64)(ulong)buf + 8;
    return vmx_run();
}

static void descriptor_tables(void)
{
    TEST_EQ(desc_run(l2_sgdt, false), R_VMCALL, "SGDT without descriptor-table exiting: no exit");
    TEST_EQ(desc_run(l2_sgdt, true), R_GDTR_IDTR, "SGDT exits");
    TEST_EQ(qual(), 0x10, "qualification: the displacement");
    TEST_EQ(info() & INFO_MEM, INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(0) | 0u << 28,
            "information: DS:[RAX+disp], SGDT");
    TEST_EQ(len(), 4, "its length");
    TEST_EQ(desc_run(l2_sidt, true), R_GDTR_IDTR, "SIDT exits");
    TEST_EQ(qual(), 0, "qualification: no displacement");
    TEST_EQ(info() & INFO_MEM, 1u | INFO_A64 | INFO_SEG(S_DS) | INFO_INDEX(6) | INFO_BASE(3) | 1u << 28,
            "information: DS:[RBX+RSI*2], SIDT");
    TEST_EQ(desc_run(l2_lgdt, true), R_GDTR_IDTR, "LGDT exits");
    TEST_EQ(qual(), 0x20, "qualification: the displacement");
    TEST_EQ(info() & INFO_MEM, INFO_A64 | INFO_SEG(S_SS) | INFO_NO_INDEX | INFO_BASE(4) | 2u << 28,
            "information: SS:[RSP+disp], LGDT");
    TEST_EQ(desc_run(l2_lidt, true), R_GDTR_IDTR, "LIDT exits");
    TEST_EQ(qual(), (u64)-8, "qualification: the displacement, sign-extended");
    TEST_EQ(info() & INFO_MEM, 3u | INFO_A64 | INFO_SEG(S_GS) | INFO_INDEX(2) | INFO_BASE(1) | 3u << 28,
            "information: GS:[RCX+RDX*8-8], LIDT");
    TEST_EQ(len(), 6, "its length");
    TEST_EQ(desc_run(l2_sldt, true), R_LDTR_TR, "SLDT exits");
    TEST_EQ(qual(), 0, "qualification: 0 for a register operand");
    TEST_EQ(info() & INFO_REG, 1u << 10 | 0u << 3 | 0u << 28, "information: register EAX, SLDT");
    TEST_EQ(desc_run(l2_str, true), R_LDTR_TR, "STR exits");
    TEST_EQ(qual(), 8, "qualification: the displacement");
    TEST_EQ(info() & INFO_MEM, INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(1) | 1u << 28,
            "information: DS:[RCX+8], STR");
    TEST_EQ(desc_run(l2_lldt, true), R_LDTR_TR, "LLDT exits");
    TEST_EQ(info() & INFO_REG, 1u << 10 | 2u << 3 | 2u << 28, "information: register DX, LLDT");
    TEST_EQ(desc_run(l2_ltr, true), R_LDTR_TR, "LTR exits");
    TEST_EQ(info() & INFO_REG, 1u << 10 | 9u << 3 | 3u << 28, "information: register R9W, LTR");
    TEST_EQ(len(), 4, "its length");
}

/* ---- VMX instructions in L2 ---- */
VMX_L2_CODE(l2_vmclear, "vmclear 0x18(%rbx,%rcx,8)");
VMX_L2_CODE(l2_vmptrld, "vmptrld (%rax)");
VMX_L2_CODE(l2_vmptrld_a32, "addr32 vmptrld (%eax)");
VMX_L2_CODE(l2_vmptrst, "vmptrst 0x40(%rsi)");
VMX_L2_CODE(l2_vmxon, "vmxon -0x10(%rbp)");
VMX_L2_CODE(l2_vmread_reg, "vmread %rax, %rbx");
VMX_L2_CODE(l2_vmread_mem, "vmread %rax, 0x8(%rdi)");
VMX_L2_CODE(l2_vmwrite_reg, "vmwrite %r12, %rdx");
VMX_L2_CODE(l2_vmwrite_mem, "vmwrite 0x20(%rsi), %rdx");
VMX_L2_CODE(l2_vmlaunch, "vmlaunch");
VMX_L2_CODE(l2_vmresume, "vmresume");
VMX_L2_CODE(l2_vmxoff, "vmxoff");
VMX_L2_CODE(l2_invept, "invept -8(%rdi), %r9");
VMX_L2_CODE(l2_invvpid, "invvpid (%rdx,%rax,4), %rcx");
VMX_L2_CODE(l2_invept_a32, "addr32 invept (%edi), %r9");

#define INFO_VMX_MEM 0x0fff8783u  /* VMCLEAR, VMPTRLD, VMPTRST, VMXON */
#define INFO_RW_MEM 0xffff8783u   /* VMREAD/VMWRITE memory form, INVEPT, INVVPID */
#define INFO_RW_REG 0xf0000478u   /* VMREAD/VMWRITE register form */

static void vmx_instructions(void)
{
    static const struct {
        const void *code;
        long reason;
        u64 qual;
        u32 mask, info;
        u64 len;
        const char *what;
    } t[] = {
        { l2_vmclear, R_VMCLEAR, 0x18, INFO_VMX_MEM,
          3u | INFO_A64 | INFO_SEG(S_DS) | INFO_INDEX(1) | INFO_BASE(3), 6, "VMCLEAR [RBX+RCX*8+18h]" },
        { l2_vmptrld, R_VMPTRLD, 0, INFO_VMX_MEM, INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(0),
          3, "VMPTRLD [RAX]" },
        { l2_vmptrld_a32, R_VMPTRLD, 0, INFO_VMX_MEM,
          1u << 7 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(0), 4, "VMPTRLD [EAX]" },
        { l2_vmptrst, R_VMPTRST, 0x40, INFO_VMX_MEM,
          INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(6), 4, "VMPTRST [RSI+40h]" },
        { l2_vmxon, R_VMXON, (u64)-0x10, INFO_VMX_MEM,
          INFO_A64 | INFO_SEG(S_SS) | INFO_NO_INDEX | INFO_BASE(5), 5, "VMXON [RBP-10h]" },
        { l2_vmread_reg, R_VMREAD, 0, INFO_RW_REG, 1u << 10 | 3u << 3 | 0u << 28, 3, "VMREAD RBX, RAX" },
        { l2_vmread_mem, R_VMREAD, 8, INFO_RW_MEM,
          INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(7) | 0u << 28, 4, "VMREAD [RDI+8], RAX" },
        { l2_vmwrite_reg, R_VMWRITE, 0, INFO_RW_REG, 1u << 10 | 12u << 3 | 2u << 28, 4, "VMWRITE RDX, R12" },
        { l2_vmwrite_mem, R_VMWRITE, 0x20, INFO_RW_MEM,
          INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(6) | 2u << 28, 4, "VMWRITE RDX, [RSI+20h]" },
        { l2_vmlaunch, R_VMLAUNCH, 0, 0, 0, 3, "VMLAUNCH" },
        { l2_vmresume, R_VMRESUME, 0, 0, 0, 3, "VMRESUME" },
        { l2_vmxoff, R_VMXOFF, 0, 0, 0, 3, "VMXOFF" },
        { l2_invept, R_INVEPT, (u64)-8, INFO_RW_MEM,
          INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(7) | 9u << 28, 7, "INVEPT R9, [RDI-8]" },
        { l2_invvpid, R_INVVPID, 0, INFO_RW_MEM,
          2u | INFO_A64 | INFO_SEG(S_DS) | INFO_INDEX(0) | INFO_BASE(2) | 1u << 28, 6,
          "INVVPID RCX, [RDX+RAX*4]" },
        { l2_invept_a32, R_INVEPT, 0, INFO_RW_MEM,
          1u << 7 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(7) | 9u << 28, 7, "INVEPT R9, [EDI]" },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(t); k++) {
        vmx_setup_l2(t[k].code, 0, 0);
        long r = vmx_run();
        TEST_ASSERT(r == t[k].reason, "%s in L2 exits with reason %ld (got %ld)", t[k].what, t[k].reason, r);
        TEST_EQ(qual(), t[k].qual, "qualification: the displacement");
        TEST_EQ(info() & t[k].mask, t[k].info, "instruction information");
        TEST_EQ(len(), t[k].len, "instruction length");
    }
}

/* ---- INVPCID ---- */
VMX_L2_CODE(l2_invpcid, "invpcid 0x10(%rax), %rbx");

static long invpcid_run(u32 proc, u32 proc2)
{
    vmx_setup_l2(l2_invpcid, proc, proc2);
    vmwrite(F_EXC_BITMAP, 1u << 6 | 1u << 13);
    memset(buf, 0, 16);
    vmx_gregs[0] = (u64)(ulong)buf - 0x10;
    vmx_gregs[3] = 2; /* all contexts */
    return vmx_run();
}

static void invpcid(void)
{
    if (!cpu_has(7, 0, 1, 10)) {
        test_skip("no INVPCID");
        return;
    }
    TEST_EQ(invpcid_run(PROC_INVLPG, 0), R_EXC_NMI, "INVPCID without secondary controls: #UD");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_UD, "the #UD");
    TEST_EQ(invpcid_run(PROC_INVLPG, PROC2_WBINVD), R_EXC_NMI, "INVPCID without enable INVPCID: #UD");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_UD, "the #UD");
    TEST_EQ(invpcid_run(0, PROC2_INVPCID), R_VMCALL, "INVPCID without INVLPG exiting: no exit");
    TEST_EQ(invpcid_run(PROC_INVLPG, PROC2_INVPCID), R_INVPCID, "INVPCID with INVLPG exiting");
    TEST_EQ(qual(), 0x10, "qualification: the displacement");
    TEST_EQ(info() & INFO_RW_MEM, INFO_A64 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(0) | 3u << 28,
            "information: [RAX+10h], RBX");
    TEST_EQ(len(), 6, "its length");
}

/* ---- L2 in 32-bit protected mode: address sizes, segment bases, 32-bit wrap ---- */
VMX_L2_CODE32(l2_32_rep_insb, "rep insb (%dx), %es:(%edi)");
VMX_L2_CODE32(l2_32_outsb_a16, "addr16 outsb (%si), (%dx)");
VMX_L2_CODE32(l2_32_invlpg, "invlpg 0x10(%eax)");
VMX_L2_CODE32(l2_32_lmsw, "lmsw 0x10(%ebx)");
VMX_L2_CODE32(l2_32_sgdt, "sgdt (%eax)");
VMX_L2_CODE32(l2_32_sgdt16, "data16 sgdt (%eax)");
VMX_L2_CODE32(l2_32_vmptrld_a16, "addr16 vmptrld 0x7(%bx,%si)");

static void setup32(const void *code, u32 proc, u32 proc2)
{
    vmx_setup_l2(code, proc, proc2);
    vmx_guest_prot32();
}

static void l2_32bit(void)
{
    u64 p2 = rdmsr(MSR_VMX_PROCBASED2) >> 32;
    if (!(p2 & PROC2_UNRESTRICTED) || !(p2 & PROC2_EPT)) {
        test_skip("no unrestricted guest");
        return;
    }
    setup32(l2_32_rep_insb, PROC_UNCOND_IO, 0);
    vmwrite(F_GUEST_ES_BASE, 0x100000);
    vmx_gregs[2] = 0x80;
    vmx_gregs[7] = 0xffffffff00000020ull;
    vmx_gregs[1] = 2;
    TEST_EQ(vmx_run(), R_IO, "32-bit L2: REP INSB exits");
    TEST_EQ(qual(), 0x80ull << 16 | IOQ_REP | IOQ_STRING | IOQ_IN, "qualification");
    TEST_EQ(vmread(F_GUEST_LINEAR), 0x100020, "guest-linear address: ES base + EDI");
    TEST_EQ(info() & 0x38380, 1u << 7 | 0u << 15, "instruction information: 32-bit addresses, ES");

    setup32(l2_32_outsb_a16, PROC_UNCOND_IO, 0);
    vmwrite(F_GUEST_DS_BASE, 0xfffff000);
    vmx_gregs[2] = 0x80;
    vmx_gregs[6] = 0xabcd1234;
    TEST_EQ(vmx_run(), R_IO, "32-bit L2: OUTSB with a 16-bit address size exits");
    TEST_EQ(vmread(F_GUEST_LINEAR), 0x234, "guest-linear address: DS base + SI, 32-bit wrap");
    TEST_EQ(info() & 0x38380, 0u << 7 | 3u << 15, "instruction information: 16-bit addresses, DS");

    setup32(l2_32_invlpg, PROC_INVLPG, 0);
    vmwrite(F_GUEST_DS_BASE, 0x200000);
    vmx_gregs[0] = 0xfffffff8;
    TEST_EQ(vmx_run(), R_INVLPG, "32-bit L2: INVLPG exits");
    TEST_EQ(qual(), 0x200008, "qualification: DS base + EAX + 10h, 32-bit wrap");

    setup32(l2_32_lmsw, 0, 0);
    vmwrite(F_GUEST_DS_BASE, 0x1000);
    vmwrite(F_CR0_MASK, 0xe);
    vmwrite(F_CR0_SHADOW, 0);
    lmsw_word = 0x0002;
    vmx_gregs[3] = (u32)((ulong)&lmsw_word - 0x1000 - 0x10);
    TEST_EQ(vmx_run(), R_CR, "32-bit L2: LMSW from memory exits");
    TEST_EQ(qual(), 0x2ull << 16 | 1 << 6 | 3 << 4, "qualification: LMSW, memory, source 2");
    TEST_EQ(vmread(F_GUEST_LINEAR), (u64)(ulong)&lmsw_word, "guest-linear address: DS base + EBX + 10h");

    setup32(l2_32_sgdt, 0, PROC2_DESC);
    TEST_EQ(vmx_run(), R_GDTR_IDTR, "32-bit L2: SGDT exits");
    TEST_EQ(info() & (0x3fff8783u | 1u << 11), 1u << 11 | 1u << 7 | INFO_SEG(S_DS) | INFO_NO_INDEX | INFO_BASE(0),
            "information: 32-bit operand size, 32-bit addresses");
    setup32(l2_32_sgdt16, 0, PROC2_DESC);
    TEST_EQ(vmx_run(), R_GDTR_IDTR, "32-bit L2: SGDT with 66h exits");
    TEST_EQ(info() & (1u << 11), 0, "information: 16-bit operand size");

    setup32(l2_32_vmptrld_a16, 0, 0);
    TEST_EQ(vmx_run(), R_VMPTRLD, "32-bit L2: VMPTRLD exits");
    TEST_EQ(qual(), 7, "qualification: the displacement");
    TEST_EQ(info() & INFO_VMX_MEM, 0u << 7 | INFO_SEG(S_DS) | INFO_INDEX(6) | INFO_BASE(3),
            "information: 16-bit addresses, [BX+SI]");
}

void test_main(void)
{
    TEST_ASSERT(vmx_on(), "VMXON");
    io();
    descriptor_tables();
    vmx_instructions();
    invpcid();
    l2_32bit();
    TEST_EQ(vmxoff(), 0, "VMXOFF");
}
