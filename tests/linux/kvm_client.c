/* The nested-VMX acceptance client (tests/linux/run.sh, boot vmx-smp1; built by
 * tests/linux/linux.mk and put into the test initramfs by scripts/linux.sh). Run inside
 * a Linux guest of nestor with kvm_intel loaded, it is a minimal KVM user: it opens
 * /dev/kvm and runs small guests (L2) through the KVM API, each check printing one line
 *   KVMTEST name PASS
 *   KVMTEST name FAIL why
 * and at the end
 *   KVMTEST done N passed M failed
 * Every check compares what the guest did (its port and MMIO accesses, the values it
 * computed, its registers) with values the client knows beforehand, so a wrong L2
 * execution, a lost exit or a wrong exit field fails it. A check that does not finish
 * within CHECK_SECONDS fails ("timeout": SIGALRM breaks KVM_RUN with EINTR).
 * Static, libc only (no pthreads: the second vCPU runs from the same thread).
 *   kvm_client [DEVICE]   (default /dev/kvm) */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

enum { CHECK_SECONDS = 60, MAX_VCPUS = 2 };

/* The guests' code. Real-mode code is entered with CS = 0, so the addresses in it are
 * guest-physical; jumps are relative, so it runs wherever the client copies it. */
extern const uint8_t real_code[], real_code_end[];
extern const uint8_t mmio_code[], mmio_code_end[];
extern const uint8_t irq_code[], irq_code_end[];
extern const uint8_t regs_code[], regs_code_end[];
extern const uint8_t long_code[], long_code_end[];
__asm__(
    ".pushsection .rodata\n"
    ".code16\n"
    /* real mode: arithmetic, an OUT of the result, an IN the client answers, the answer
     * plus 3 out again, HLT */
    "real_code:\n"
    "  mov $0x1234, %ax\n"
    "  add $0x1111, %ax\n"
    "  mov $7, %cx\n"
    "  imul %cx, %ax\n"          /* 0x2345 * 7 = 0xf6e3 */
    "  mov $0x10, %dx\n"
    "  out %ax, %dx\n"
    "  mov $0x11, %dx\n"
    "  in %dx, %al\n"
    "  add $3, %al\n"
    "  out %al, $0x12\n"
    "  hlt\n"
    "real_code_end:\n"
    /* MMIO: DS = 0x3000 puts [0x10] and [0x20] at 0x30010 and 0x30020, beyond the
     * VM's only memory slot: a 2-byte store, a 4-byte load the client answers, the
     * loaded value plus 1 out through port 0x13 */
    "mmio_code:\n"
    "  mov $0x3000, %ax\n"
    "  mov %ax, %ds\n"
    "  movw $0xbeef, 0x10\n"
    "  movl 0x20, %eax\n"
    "  add $1, %eax\n"
    "  out %eax, $0x13\n"
    "  hlt\n"
    "mmio_code_end:\n"
    /* interrupts: with IF = 0 the client sees no interrupt window (port 0x32), asks for
     * one, and injects when it opens; the handler (IVT, set by the client) OUTs its
     * vector to port 0x30; back from it, 0xee to port 0x31 */
    "irq_code:\n"
    "  cli\n"
    "  out %al, $0x32\n"
    "  sti\n"
    "  nop\n"                    /* STI's interrupt shadow */
    "  hlt\n"
    "  mov $0xee, %al\n"
    "  out %al, $0x31\n"
    "  hlt\n"
    "irq_code_end:\n"
    /* registers: EAX = EBX * ECX + EDX + ESI - EDI, out through port 0x40 */
    "regs_code:\n"
    "  mov %ebx, %eax\n"
    "  imul %ecx, %eax\n"
    "  add %edx, %eax\n"
    "  add %esi, %eax\n"
    "  sub %edi, %eax\n"
    "  out %eax, $0x40\n"
    "  hlt\n"
    "regs_code_end:\n"
    ".code64\n"
    /* long mode (identity-mapped 2 MiB page): fill 4096 quadwords at 1 MiB with
     * i * i + i * 0x9e3779b97f4a7c15, fold them with h = rol(h, 5) ^ x, and OUT the
     * 64-bit result's low half to port 0x20, its high half to port 0x21 */
    "long_code:\n"
    "  mov $0x100000, %edi\n"
    "  movabs $0x9e3779b97f4a7c15, %r8\n"
    "  xor %ecx, %ecx\n"
    "1:mov %rcx, %rax\n"
    "  imul %rcx, %rax\n"
    "  mov %rcx, %rdx\n"
    "  imul %r8, %rdx\n"
    "  add %rdx, %rax\n"
    "  mov %rax, (%rdi,%rcx,8)\n"
    "  inc %rcx\n"
    "  cmp $4096, %rcx\n"
    "  jne 1b\n"
    "  xor %eax, %eax\n"
    "  xor %ecx, %ecx\n"
    "2:rol $5, %rax\n"
    "  xor (%rdi,%rcx,8), %rax\n"
    "  inc %rcx\n"
    "  cmp $4096, %rcx\n"
    "  jne 2b\n"
    "  push %rax\n"              /* through the stack, too */
    "  pop %rbx\n"
    "  mov %ebx, %eax\n"
    "  mov $0x20, %dx\n"
    "  out %eax, %dx\n"
    "  shr $32, %rbx\n"
    "  mov %ebx, %eax\n"
    "  inc %dx\n"
    "  out %eax, %dx\n"
    "  hlt\n"
    "long_code_end:\n"
    ".popsection\n");

static int kvm_fd = -1;
static int vcpu_mmap_size;
static unsigned passed, failed;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
}

struct vm {
    int fd;
    uint8_t *mem;     /* guest-physical 0 .. mem_size */
    size_t mem_size;
    int nvcpus;
    int vcpu_fd[MAX_VCPUS];
    struct kvm_run *run[MAX_VCPUS];
};

/* The check in progress: its first failure is the one reported. */
static const char *check_name;
static char check_why[256];

static void fail(const char *fmt, ...)
{
    if (check_why[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(check_why, sizeof(check_why), fmt, ap);
    va_end(ap);
}

static void begin(const char *name)
{
    check_name = name;
    check_why[0] = 0;
    timed_out = 0;
    alarm(CHECK_SECONDS);
}

static void end(void)
{
    alarm(0);
    if (check_why[0]) {
        failed++;
        printf("KVMTEST %s FAIL %s\n", check_name, check_why);
    } else {
        passed++;
        printf("KVMTEST %s PASS\n", check_name);
    }
}

static bool vm_create(struct vm *vm, size_t mem_size, int nvcpus)
{
    memset(vm, 0, sizeof(*vm));
    vm->fd = -1;
    vm->fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (vm->fd < 0) {
        fail("KVM_CREATE_VM: %s", strerror(errno));
        return false;
    }
    /* Intel without unrestricted guest runs real mode through vm86 in a TSS that KVM
     * keeps in three pages of guest-physical space: where QEMU puts them */
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0 &&
        ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) {
        fail("KVM_SET_TSS_ADDR: %s", strerror(errno));
        return false;
    }
    vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vm->mem == MAP_FAILED) {
        vm->mem = NULL;
        fail("mmap of %zu bytes: %s", mem_size, strerror(errno));
        return false;
    }
    vm->mem_size = mem_size;
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = mem_size,
        .userspace_addr = (uintptr_t)vm->mem,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        fail("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
        return false;
    }
    for (int i = 0; i < nvcpus; i++) {
        vm->vcpu_fd[i] = ioctl(vm->fd, KVM_CREATE_VCPU, i);
        if (vm->vcpu_fd[i] < 0) {
            fail("KVM_CREATE_VCPU %d: %s", i, strerror(errno));
            return false;
        }
        vm->nvcpus = i + 1;
        vm->run[i] = mmap(NULL, vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                          vm->vcpu_fd[i], 0);
        if (vm->run[i] == MAP_FAILED) {
            vm->run[i] = NULL;
            fail("mmap of vCPU %d's kvm_run: %s", i, strerror(errno));
            return false;
        }
    }
    return true;
}

static void vm_destroy(struct vm *vm)
{
    for (int i = 0; i < vm->nvcpus; i++) {
        if (vm->run[i])
            munmap(vm->run[i], vcpu_mmap_size);
        close(vm->vcpu_fd[i]);
    }
    if (vm->mem)
        munmap(vm->mem, vm->mem_size);
    if (vm->fd >= 0)
        close(vm->fd);
}

/* Copies guest code to gpa; true, to chain with the other steps. */
static bool load(struct vm *vm, uint64_t gpa, const uint8_t *start, const uint8_t *end)
{
    memcpy(vm->mem + gpa, start, (size_t)(end - start));
    return true;
}

/* Real mode at CS:IP = 0:ip, all data segments 0, SS:SP = 0:0x8000. */
static bool setup_real_mode(struct vm *vm, int vcpu, uint64_t ip, struct kvm_regs *regs)
{
    struct kvm_sregs sregs;
    if (ioctl(vm->vcpu_fd[vcpu], KVM_GET_SREGS, &sregs) < 0) {
        fail("KVM_GET_SREGS: %s", strerror(errno));
        return false;
    }
    struct kvm_segment *segs[] = { &sregs.cs, &sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss };
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
        segs[i]->selector = 0;
        segs[i]->base = 0;
    }
    if (ioctl(vm->vcpu_fd[vcpu], KVM_SET_SREGS, &sregs) < 0) {
        fail("KVM_SET_SREGS: %s", strerror(errno));
        return false;
    }
    struct kvm_regs r = { 0 };
    if (regs)
        r = *regs;
    r.rip = ip;
    r.rsp = 0x8000;
    r.rflags = 0x2;
    if (ioctl(vm->vcpu_fd[vcpu], KVM_SET_REGS, &r) < 0) {
        fail("KVM_SET_REGS: %s", strerror(errno));
        return false;
    }
    return true;
}

static const char *exit_name(uint32_t reason)
{
    static const char *const names[] = {
        [KVM_EXIT_UNKNOWN] = "UNKNOWN", [KVM_EXIT_EXCEPTION] = "EXCEPTION",
        [KVM_EXIT_IO] = "IO", [KVM_EXIT_HYPERCALL] = "HYPERCALL", [KVM_EXIT_DEBUG] = "DEBUG",
        [KVM_EXIT_HLT] = "HLT", [KVM_EXIT_MMIO] = "MMIO",
        [KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN", [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
        [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY", [KVM_EXIT_INTR] = "INTR",
        [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
    };
    if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
        return names[reason];
    static char other[32];
    snprintf(other, sizeof(other), "%u", reason);
    return other;
}

/* Runs the vCPU to its next exit; false (with the failure noted) if KVM_RUN fails. */
static bool run(struct vm *vm, int vcpu)
{
    if (ioctl(vm->vcpu_fd[vcpu], KVM_RUN, 0) < 0) {
        if (errno == EINTR && timed_out)
            fail("timeout: the guest ran %d s without the expected exit", CHECK_SECONDS);
        else
            fail("KVM_RUN: %s", strerror(errno));
        return false;
    }
    return true;
}

static void describe_exit(char *buf, size_t size, const struct kvm_run *r)
{
    switch (r->exit_reason) {
    case KVM_EXIT_IO:
        snprintf(buf, size, "IO %s port 0x%x size %u count %u",
                 r->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", r->io.port, r->io.size,
                 r->io.count);
        break;
    case KVM_EXIT_MMIO:
        snprintf(buf, size, "MMIO %s 0x%llx len %u", r->mmio.is_write ? "write" : "read",
                 (unsigned long long)r->mmio.phys_addr, r->mmio.len);
        break;
    case KVM_EXIT_FAIL_ENTRY:
        snprintf(buf, size, "FAIL_ENTRY reason 0x%llx",
                 (unsigned long long)r->fail_entry.hardware_entry_failure_reason);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        snprintf(buf, size, "INTERNAL_ERROR suberror %u", r->internal.suberror);
        break;
    default:
        snprintf(buf, size, "%s", exit_name(r->exit_reason));
    }
}

/* Runs to the next exit, which must be a port access: the direction, port and size the
 * guest code makes. For an OUT, *value receives the data; for an IN, *value is the
 * answer. */
static bool expect_io(struct vm *vm, int vcpu, uint8_t dir, uint16_t port, uint8_t size,
                      uint32_t *value)
{
    if (!run(vm, vcpu))
        return false;
    struct kvm_run *r = vm->run[vcpu];
    char got[96];
    describe_exit(got, sizeof(got), r);
    if (r->exit_reason != KVM_EXIT_IO || r->io.direction != dir || r->io.port != port ||
        r->io.size != size || r->io.count != 1) {
        fail("want IO %s port 0x%x size %u count 1, got %s", dir == KVM_EXIT_IO_OUT ? "out" : "in",
             port, size, got);
        return false;
    }
    if (r->io.data_offset + size > (uint64_t)vcpu_mmap_size) {
        fail("IO data_offset 0x%llx outside the kvm_run mapping", (unsigned long long)r->io.data_offset);
        return false;
    }
    uint8_t *data = (uint8_t *)r + r->io.data_offset;
    if (dir == KVM_EXIT_IO_OUT) {
        *value = 0;
        memcpy(value, data, size);
    } else {
        memcpy(data, value, size);
    }
    return true;
}

static bool expect_hlt(struct vm *vm, int vcpu)
{
    if (!run(vm, vcpu))
        return false;
    if (vm->run[vcpu]->exit_reason != KVM_EXIT_HLT) {
        char got[96];
        describe_exit(got, sizeof(got), vm->run[vcpu]);
        fail("want HLT, got %s", got);
        return false;
    }
    return true;
}

static bool get_regs(struct vm *vm, int vcpu, struct kvm_regs *regs)
{
    if (ioctl(vm->vcpu_fd[vcpu], KVM_GET_REGS, regs) < 0) {
        fail("KVM_GET_REGS: %s", strerror(errno));
        return false;
    }
    return true;
}

/* KVM's API version is the one this client was written against (12, stable since
 * Linux 2.6.22), and the vCPU's shared kvm_run page can be mapped. */
static bool check_api_version(void)
{
    begin("api-version");
    int version = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        fail("KVM_GET_API_VERSION gave %d, want %d", version, KVM_API_VERSION);
    else if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0)
        fail("no KVM_CAP_USER_MEMORY");
    else if ((vcpu_mmap_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0)) < (int)sizeof(struct kvm_run))
        fail("KVM_GET_VCPU_MMAP_SIZE gave %d", vcpu_mmap_size);
    end();
    return failed == 0;
}

enum { CODE = 0x1000 };

static void check_real_mode(void)
{
    struct vm vm;
    uint32_t v;
    begin("real-mode");
    if (vm_create(&vm, 0x10000, 1) && load(&vm, CODE, real_code, real_code_end) &&
        setup_real_mode(&vm, 0, CODE, NULL) && expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x10, 2, &v)) {
        if (v != 0xf6e3)
            fail("OUT of (0x1234 + 0x1111) * 7 gave 0x%x, want 0xf6e3", v);
        uint32_t answer = 0x5a;
        uint32_t back;
        struct kvm_regs regs;
        if (expect_io(&vm, 0, KVM_EXIT_IO_IN, 0x11, 1, &answer) &&
            expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x12, 1, &back)) {
            if (back != 0x5d)
                fail("the IN answered 0x5a, plus 3, came back as 0x%x", back);
            if (expect_hlt(&vm, 0) && get_regs(&vm, 0, &regs) &&
                regs.rip != CODE + (uint64_t)(real_code_end - real_code))
                fail("RIP after HLT is 0x%llx, want 0x%llx", (unsigned long long)regs.rip,
                     (unsigned long long)(CODE + (real_code_end - real_code)));
        }
    }
    vm_destroy(&vm);
    end();
}

static void check_mmio(void)
{
    struct vm vm;
    begin("mmio");
    /* one slot of 64 KiB: the accesses at 0x30010/0x30020 hit no memory */
    if (vm_create(&vm, 0x10000, 1) && load(&vm, CODE, mmio_code, mmio_code_end) &&
        setup_real_mode(&vm, 0, CODE, NULL) && run(&vm, 0)) {
        struct kvm_run *r = vm.run[0];
        char got[96];
        describe_exit(got, sizeof(got), r);
        uint16_t stored;
        memcpy(&stored, r->mmio.data, sizeof(stored));
        if (r->exit_reason != KVM_EXIT_MMIO || !r->mmio.is_write || r->mmio.phys_addr != 0x30010 ||
            r->mmio.len != 2)
            fail("want MMIO write 0x30010 len 2, got %s", got);
        else if (stored != 0xbeef)
            fail("the MMIO store wrote 0x%x, want 0xbeef", stored);
        else if (run(&vm, 0)) {
            describe_exit(got, sizeof(got), r);
            if (r->exit_reason != KVM_EXIT_MMIO || r->mmio.is_write || r->mmio.phys_addr != 0x30020 ||
                r->mmio.len != 4) {
                fail("want MMIO read 0x30020 len 4, got %s", got);
            } else {
                uint32_t answer = 0x12345678, v;
                memcpy(r->mmio.data, &answer, sizeof(answer));
                if (expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x13, 4, &v)) {
                    if (v != 0x12345679)
                        fail("the MMIO load answered 0x12345678, plus 1, came back as 0x%x", v);
                    expect_hlt(&vm, 0);
                }
            }
        }
    }
    vm_destroy(&vm);
    end();
}

/* The long-mode guest's result, computed here. */
static uint64_t long_mode_expected(void)
{
    uint64_t h = 0;
    for (uint64_t i = 0; i < 4096; i++) {
        uint64_t x = i * i + i * 0x9e3779b97f4a7c15ull;
        h = ((h << 5) | (h >> 59)) ^ x;
    }
    return h;
}

static void check_long_mode(void)
{
    struct vm vm;
    begin("long-mode");
    /* 2 MiB: page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD, one 2 MiB page at
     * 0), the GDT at 0x500, the code at 0x10000, the stack below 0x80000, the data at
     * 1 MiB */
    enum { PML4 = 0x1000, PDPT = 0x2000, PD = 0x3000, GDT = 0x500, LCODE = 0x10000 };
    if (vm_create(&vm, 0x200000, 1)) {
        uint64_t *pml4 = (uint64_t *)(vm.mem + PML4), *pdpt = (uint64_t *)(vm.mem + PDPT),
                 *pd = (uint64_t *)(vm.mem + PD), *gdt = (uint64_t *)(vm.mem + GDT);
        pml4[0] = PDPT | 0x3;        /* present, writable */
        pdpt[0] = PD | 0x3;
        pd[0] = 0x0 | 0x83;          /* a 2 MiB page (PS) */
        gdt[0] = 0;
        gdt[1] = 0x00af9b000000ffffull; /* 0x08: 64-bit code, DPL 0 */
        gdt[2] = 0x00cf93000000ffffull; /* 0x10: data */
        load(&vm, LCODE, long_code, long_code_end);

        struct kvm_sregs sregs;
        if (ioctl(vm.vcpu_fd[0], KVM_GET_SREGS, &sregs) < 0) {
            fail("KVM_GET_SREGS: %s", strerror(errno));
        } else {
            struct kvm_segment code = {
                .base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 11, .present = 1,
                .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
            };
            struct kvm_segment data = {
                .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 3, .present = 1,
                .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
            };
            sregs.cs = code;
            sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
            sregs.gdt.base = GDT;
            sregs.gdt.limit = 3 * 8 - 1;
            sregs.cr3 = PML4;
            sregs.cr4 = 1u << 5;                         /* PAE */
            sregs.cr0 = 1u << 0 | 1u << 4 | 1u << 5 | 1u << 31; /* PE, ET, NE, PG */
            sregs.efer = 1u << 8 | 1u << 10;             /* LME, LMA */
            struct kvm_regs regs = { .rip = LCODE, .rsp = 0x80000, .rflags = 0x2 };
            uint32_t lo, hi;
            if (ioctl(vm.vcpu_fd[0], KVM_SET_SREGS, &sregs) < 0) {
                fail("KVM_SET_SREGS (long mode): %s", strerror(errno));
            } else if (ioctl(vm.vcpu_fd[0], KVM_SET_REGS, &regs) < 0) {
                fail("KVM_SET_REGS: %s", strerror(errno));
            } else if (expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x20, 4, &lo) &&
                       expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x21, 4, &hi)) {
                uint64_t got = (uint64_t)hi << 32 | lo, want = long_mode_expected();
                if (got != want)
                    fail("checksum 0x%016llx, want 0x%016llx", (unsigned long long)got,
                         (unsigned long long)want);
                else if (expect_hlt(&vm, 0)) {
                    /* and the guest's data is where its page tables put it */
                    uint64_t last;
                    memcpy(&last, vm.mem + 0x100000 + 8 * 4095, sizeof(last));
                    if (last != 4095ull * 4095 + 4095ull * 0x9e3779b97f4a7c15ull)
                        fail("the quadword at 0x107ff8 is 0x%016llx", (unsigned long long)last);
                    else if (ioctl(vm.vcpu_fd[0], KVM_GET_SREGS, &sregs) < 0)
                        fail("KVM_GET_SREGS: %s", strerror(errno));
                    else if (!(sregs.efer & (1u << 10)) || !sregs.cs.l)
                        fail("after the run EFER is 0x%llx, CS.L %u: not in long mode",
                             (unsigned long long)sregs.efer, sregs.cs.l);
                }
            }
        }
    }
    vm_destroy(&vm);
    end();
}

enum { IRQ_VECTOR = 0x23, IRQ_HANDLERS = 0x2000 };

static void check_interrupt(void)
{
    struct vm vm;
    begin("interrupt");
    if (vm_create(&vm, 0x10000, 1)) {
        /* the IVT: vector v's handler at 0:IRQ_HANDLERS + 8v is "mov $v, %al;
         * out %al, $0x30; iret" (b0 v, e6 30, cf), so the port says which one ran */
        for (unsigned v = 0; v < 256; v++) {
            uint16_t off = (uint16_t)(IRQ_HANDLERS + 8 * v), seg = 0;
            memcpy(vm.mem + 4 * v, &off, 2);
            memcpy(vm.mem + 4 * v + 2, &seg, 2);
            const uint8_t stub[] = { 0xb0, (uint8_t)v, 0xe6, 0x30, 0xcf };
            memcpy(vm.mem + off, stub, sizeof(stub));
        }
        load(&vm, CODE, irq_code, irq_code_end);
        struct kvm_run *r = vm.run[0];
        uint32_t v;
        if (setup_real_mode(&vm, 0, CODE, NULL) && expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x32, 1, &v)) {
            /* IF = 0 here: no injection possible */
            if (r->ready_for_interrupt_injection || r->if_flag)
                fail("with IF = 0: ready_for_interrupt_injection %u, if_flag %u",
                     r->ready_for_interrupt_injection, r->if_flag);
            r->request_interrupt_window = 1;
            /* after STI (and its shadow) KVM reports the open window, either as
             * IRQ_WINDOW_OPEN or as the HLT's exit with the vCPU ready */
            if (!check_why[0] && run(&vm, 0)) {
                char got[96];
                describe_exit(got, sizeof(got), r);
                if (r->exit_reason != KVM_EXIT_IRQ_WINDOW_OPEN && r->exit_reason != KVM_EXIT_HLT)
                    fail("want IRQ_WINDOW_OPEN or HLT after STI, got %s", got);
                else if (!r->ready_for_interrupt_injection || !r->if_flag)
                    fail("%s with ready_for_interrupt_injection %u, if_flag %u", got,
                         r->ready_for_interrupt_injection, r->if_flag);
            }
            r->request_interrupt_window = 0;
            struct kvm_interrupt irq = { .irq = IRQ_VECTOR };
            if (check_why[0]) {
            } else if (ioctl(vm.vcpu_fd[0], KVM_INTERRUPT, &irq) < 0) {
                fail("KVM_INTERRUPT: %s", strerror(errno));
            } else if (expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x30, 1, &v)) {
                if (v != IRQ_VECTOR) {
                    fail("injected vector 0x%x, the handler of 0x%x ran", IRQ_VECTOR, v);
                } else {
                    /* back from the handler: if the window opened before the HLT, the
                     * guest halts once more before going on */
                    if (run(&vm, 0) && r->exit_reason == KVM_EXIT_HLT)
                        run(&vm, 0);
                    char got[96];
                    describe_exit(got, sizeof(got), r);
                    uint8_t back = r->exit_reason == KVM_EXIT_IO ? *((uint8_t *)r + r->io.data_offset) : 0;
                    if (check_why[0]) {
                    } else if (r->exit_reason != KVM_EXIT_IO || r->io.port != 0x31 || back != 0xee)
                        fail("after the handler's IRET: want OUT 0xee to port 0x31, got %s", got);
                    else
                        expect_hlt(&vm, 0);
                }
            }
        }
    }
    vm_destroy(&vm);
    end();
}

/* KVM_SET_REGS then KVM_GET_REGS gives the same registers back, and the guest computes
 * with them. */
static void check_regs(void)
{
    struct vm vm;
    begin("regs");
    if (vm_create(&vm, 0x10000, 1)) {
        load(&vm, CODE, regs_code, regs_code_end);
        struct kvm_regs set = {
            .rax = 0x1111111122222222ull, .rbx = 0x1234, .rcx = 0x5678, .rdx = 0x9abc,
            .rsi = 0x10001, .rdi = 0x7, .rbp = 0x5555aaaa5555aaaaull,
            .r8 = 0x8888888888888888ull, .r9 = 9, .r10 = 10, .r11 = 11, .r12 = 12,
            .r13 = 13, .r14 = 14, .r15 = 0xf0f0f0f0f0f0f0f0ull,
        };
        struct kvm_regs got;
        if (setup_real_mode(&vm, 0, CODE, &set) && get_regs(&vm, 0, &got)) {
            set.rip = CODE;
            set.rsp = 0x8000;
            set.rflags = 0x2;
            const uint64_t *a = (const uint64_t *)&set, *b = (const uint64_t *)&got;
            for (size_t i = 0; i < sizeof(set) / 8; i++) {
                if (a[i] != b[i]) {
                    fail("KVM_GET_REGS word %zu is 0x%llx, KVM_SET_REGS wrote 0x%llx", i,
                         (unsigned long long)b[i], (unsigned long long)a[i]);
                    break;
                }
            }
            uint32_t v, want = 0x1234u * 0x5678u + 0x9abcu + 0x10001u - 7u;
            if (!check_why[0] && expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x40, 4, &v)) {
                if (v != want)
                    fail("EBX * ECX + EDX + ESI - EDI gave 0x%x, want 0x%x", v, want);
                else if (expect_hlt(&vm, 0) && get_regs(&vm, 0, &got) &&
                         ((uint32_t)got.rax != want || got.r15 != set.r15 || got.rbp != set.rbp))
                    fail("after the run RAX 0x%llx RBP 0x%llx R15 0x%llx",
                         (unsigned long long)got.rax, (unsigned long long)got.rbp,
                         (unsigned long long)got.r15);
            }
        }
    }
    vm_destroy(&vm);
    end();
}

/* Two vCPUs of one VM run the same code with their own registers; each one's result is
 * its own. Run in turns, and interleaved: vCPU 1 runs between vCPU 0's OUT and HLT. */
static void check_two_vcpus(void)
{
    struct vm vm;
    begin("two-vcpus");
    if (vm_create(&vm, 0x10000, 2)) {
        load(&vm, CODE, regs_code, regs_code_end);
        struct kvm_regs r0 = { .rbx = 3, .rcx = 5, .rdx = 100, .rsi = 0, .rdi = 1 };
        struct kvm_regs r1 = { .rbx = 11, .rcx = 13, .rdx = 0, .rsi = 1000, .rdi = 2 };
        uint32_t v0, v1;
        if (setup_real_mode(&vm, 0, CODE, &r0) && setup_real_mode(&vm, 1, CODE, &r1) &&
            expect_io(&vm, 0, KVM_EXIT_IO_OUT, 0x40, 4, &v0) &&
            expect_io(&vm, 1, KVM_EXIT_IO_OUT, 0x40, 4, &v1)) {
            if (v0 != 3 * 5 + 100 - 1 || v1 != 11 * 13 + 1000 - 2)
                fail("vCPU 0 gave %u (want 114), vCPU 1 gave %u (want 1141)", v0, v1);
            else if (expect_hlt(&vm, 1) && expect_hlt(&vm, 0)) {
                struct kvm_regs g0, g1;
                if (get_regs(&vm, 0, &g0) && get_regs(&vm, 1, &g1) &&
                    ((uint32_t)g0.rax != 114 || (uint32_t)g1.rax != 1141))
                    fail("after the runs RAX 0x%llx and 0x%llx", (unsigned long long)g0.rax,
                         (unsigned long long)g1.rax);
            }
        }
    }
    vm_destroy(&vm);
    end();
}

int main(int argc, char **argv)
{
    const char *dev = argc > 1 ? argv[1] : "/dev/kvm";
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART: KVM_RUN returns EINTR */
    sigaction(SIGALRM, &sa, NULL);

    kvm_fd = open(dev, O_RDWR | O_CLOEXEC);
    begin("open");
    if (kvm_fd < 0)
        fail("%s: %s", dev, strerror(errno));
    end();
    if (kvm_fd >= 0 && check_api_version()) {
        check_real_mode();
        check_mmio();
        check_long_mode();
        check_interrupt();
        check_regs();
        check_two_vcpus();
    }
    printf("KVMTEST done %u passed %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
