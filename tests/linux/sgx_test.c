/* The SGX acceptance program (tests/linux/run.sh, boot sgx-smp2; built by
 * tests/linux/linux.mk and put into the test initramfs by scripts/linux.sh). Run inside
 * a Linux guest of nestor whose kernel took SGX, it builds the test's own enclave
 * (tests/linux/sgx_encl.S, sgx_encl.c; the image, its page layout and the SIGSTRUCT that
 * tests/sgx/sgx_sign made for it) through Linux's driver, /dev/sgx_enclave, and runs it:
 * through the vDSO's __vdso_sgx_enter_enclave, and through a plain ENCLU[EENTER] whose
 * asynchronous exit pointer counts the AEXs: a buffer transformed, data kept across
 * entries, EGETKEY, EREPORT (its MAC checked inside), #UD handled by the enclave's own
 * handler, EDBGRD/EDBGWR through /proc/self/mem, AEXs under a loop, two threads, SGX2
 * (EAUG, EMODPR and EACCEPT, EMODPE, EMODT and removal) and 72 MiB of enclave pages in a
 * 64 MiB EPC (Linux pages them out and in). One line per check:
 *   sgxtest: NAME: ok (details)
 *   sgxtest: NAME: FAIL: why
 * and at the end
 *   sgxtest: done N passed M failed
 * Every check compares what the enclave computed, or what the processor put in its
 * report, with values this program or the signing tool knows beforehand.
 * Static, libc and pthreads only.
 *   sgx_test [DIR]   (default /sgx: encl.bin, encl.layout, encl.sig, encl.expect) */
#include <asm/sgx.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "sgx_encl.h"

enum { PAGE = 4096, EENTER = 2, ERESUME = 3, EEXIT = 4, MAX_PAGES = ENCL_SIZE / PAGE };

/* the signature's fields the SECS must agree with (SDM Vol. 3D 35.14) */
#define SS_MODULUS 128
#define SS_MISCSELECT 900
#define SS_ATTRIBUTES 928
#define SS_ENCLAVEHASH 960
#define SS_ISVPRODID 1024
#define SS_ISVSVN 1026
#define SIGSTRUCT_SIZE 1808

/* SECINFO.FLAGS */
#define SI_R 0x1
#define SI_W 0x2
#define SI_X 0x4
#define SI_TCS (1u << 8)
#define SI_REG (2u << 8)

/* the report's fields (SDM Vol. 3D 35.17) */
#define REPORT_ATTRIBUTES 48
#define REPORT_MRENCLAVE 64
#define REPORT_MRSIGNER 128
#define REPORT_ISVPRODID 256
#define REPORT_ISVSVN 258
#define REPORT_DATA 320

static int passed, failed;

static void result(const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void result(const char *name, bool ok, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (ok) {
        printf("sgxtest: %s: ok (%s)\n", name, buf);
        passed++;
    } else {
        printf("sgxtest: %s: FAIL: %s\n", name, buf);
        failed++;
    }
    fflush(stdout);
}

static int finish(void)
{
    printf("sgxtest: done %d passed %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* ---- the enclave's files ---- */
static uint8_t *read_file(const char *dir, const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

struct page {
    uint64_t offset;
    uint64_t flags; /* SECINFO.FLAGS */
    bool measure;
};

/* tests/sgx/sgx_sign's layout format: OFFSET tcs|reg PERMS MEASURE per line */
static int parse_layout(char *text, struct page *pages)
{
    int n = 0;
    for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char type[8], perms[8];
        unsigned long long off;
        int measure;
        if (line[0] == '#' || line[0] == 0)
            continue;
        if (sscanf(line, "%llx %7s %7s %d", &off, type, perms, &measure) != 4 || n == MAX_PAGES ||
            off % PAGE || off >= ENCL_SIZE)
            return -1;
        uint64_t f = !strcmp(type, "tcs") ? SI_TCS : SI_REG;
        for (const char *c = perms; *c; c++)
            f |= *c == 'r' ? SI_R : *c == 'w' ? SI_W : *c == 'x' ? SI_X : 0;
        pages[n++] = (struct page){off, f, measure == 1};
    }
    return n;
}

static bool parse_hex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* the protection of a page's mapping: its permissions, read-write for a TCS */
static int prot(uint64_t f)
{
    if (f & SI_TCS)
        return PROT_READ | PROT_WRITE;
    return (f & SI_R ? PROT_READ : 0) | (f & SI_W ? PROT_WRITE : 0) | (f & SI_X ? PROT_EXEC : 0);
}

/* ---- the vDSO's entry ---- */
/* __vdso_sgx_enter_enclave among the vDSO's dynamic symbols (DT_SYMTAB, DT_STRTAB, and
 * DT_HASH for their number), the vDSO being the ELF image at AT_SYSINFO_EHDR */
static vdso_sgx_enter_enclave_t find_vdso_enter(void)
{
    const uint8_t *base = (const uint8_t *)getauxval(AT_SYSINFO_EHDR);
    if (!base)
        return NULL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
    uintptr_t load = 0;
    const Elf64_Dyn *dyn = NULL;
    bool have_load = false;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !have_load) {
            load = (uintptr_t)base - ph[i].p_vaddr + ph[i].p_offset;
            have_load = true;
        }
        if (ph[i].p_type == PT_DYNAMIC)
            dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
    }
    if (!dyn || !have_load)
        return NULL;
    const Elf64_Sym *sym = NULL;
    const char *str = NULL;
    const uint32_t *hash = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB)
            sym = (const Elf64_Sym *)(load + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_STRTAB)
            str = (const char *)(load + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_HASH)
            hash = (const uint32_t *)(load + dyn->d_un.d_ptr);
    }
    if (!sym || !str || !hash)
        return NULL;
    for (uint32_t i = 0; i < hash[1]; i++)
        if (sym[i].st_shndx != SHN_UNDEF && ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC &&
            !strcmp(str + sym[i].st_name, "__vdso_sgx_enter_enclave"))
            return (vdso_sgx_enter_enclave_t)(load + sym[i].st_value);
    return NULL;
}

/* ---- a plain EENTER whose AEP counts the asynchronous exits, then resumes ---- */
void sgx_enter_counted(uint64_t tcs, uint64_t cmd, void *arg);
volatile uint64_t sgx_aex_count;
__asm__(".text\n"
        ".globl sgx_enter_counted\n"
        "sgx_enter_counted:\n"
        "    push %rbx\n"
        "    push %rbp\n"
        "    push %r12\n"
        "    push %r13\n"
        "    push %r14\n"
        "    push %r15\n"
        "    mov %rdi, %rbx\n"             /* the TCS */
        "    mov %rsi, %rdi\n"             /* the command */
        "    mov %rdx, %rsi\n"
        "    lea sgx_aep(%rip), %rcx\n"
        "    mov $2, %eax\n"               /* EENTER */
        "    enclu\n"                      /* EEXIT comes back after it */
        "    pop %r15\n"
        "    pop %r14\n"
        "    pop %r13\n"
        "    pop %r12\n"
        "    pop %rbp\n"
        "    pop %rbx\n"
        "    ret\n"
        "sgx_aep:\n"                       /* RAX = ERESUME, RBX = the TCS, RCX = here */
        "    lock incq sgx_aex_count(%rip)\n"
        "    enclu\n");

/* The vDSO's entry through a wrapper that keeps every callee-saved register: the vDSO
 * keeps RBX and RBP only, and after an exception inside the enclave (an AEX: its
 * synthetic state zeroes the other registers) R12-R15 come back zero. */
vdso_sgx_enter_enclave_t vdso_enter;
int vdso_call(unsigned long rdi, unsigned long rsi, unsigned long rdx, unsigned int function,
              unsigned long r8, unsigned long r9, struct sgx_enclave_run *run);
__asm__(".text\n"
        ".globl vdso_call\n"
        "vdso_call:\n"
        "    push %rbx\n"
        "    push %rbp\n"
        "    push %r12\n"
        "    push %r13\n"
        "    push %r14\n"
        "    push %r15\n"
        "    push 0x38(%rsp)\n"           /* run, the 7th argument */
        "    call *vdso_enter(%rip)\n"
        "    add $8, %rsp\n"
        "    pop %r15\n"
        "    pop %r14\n"
        "    pop %r13\n"
        "    pop %r12\n"
        "    pop %rbp\n"
        "    pop %rbx\n"
        "    ret\n");

/* ---- the enclave ---- */
static uint64_t encl_base;

static int call(uint64_t tcs_off, uint64_t cmd, void *arg, struct sgx_enclave_run *run)
{
    memset(run, 0, sizeof(*run));
    run->tcs = encl_base + tcs_off;
    return vdso_call(cmd, (unsigned long)arg, 0, EENTER, 0, 0, run);
}

/* An exception the caller did not ask for leaves the thread at CSSA 1: the enclave's
 * handler abandons the command, and the ERESUME that follows leaves the enclave, so that
 * the next checks find the TCS as before. */
static const char *recover(uint64_t tcs, uint64_t *action)
{
    struct handler_info hi = {0};
    struct sgx_enclave_run run = {.tcs = tcs};
    *action = 0;
    if (vdso_call(CMD_HANDLER, (unsigned long)&hi, 0, EENTER, 0, 0, &run) || run.function != EEXIT ||
        hi.status != ENCL_OK)
        return "the handler's entry failed";
    *action = hi.action;
    memset(&run, 0, sizeof(run));
    run.tcs = tcs;
    if (vdso_call(0, 0, 0, ERESUME, 0, 0, &run) || run.function != EEXIT)
        return "its ERESUME failed";
    return "recovered";
}

static const char *call_trouble(int r, const struct sgx_enclave_run *run)
{
    static char buf[200];
    if (r != 0) {
        snprintf(buf, sizeof(buf), "the vDSO returned %d", r);
    } else if (run->function != EEXIT) {
        uint64_t action;
        const char *rec = recover(run->tcs, &action);
        snprintf(buf, sizeof(buf), "leaf %u, exception %u (error code %#x) at %#llx (%s, handler action %" PRIu64 ")",
                 run->function, run->exception_vector, run->exception_error_code,
                 (unsigned long long)run->exception_addr, rec, action);
    } else {
        return NULL;
    }
    return buf;
}

/* what the loop of CMD_SPIN computes in n iterations */
static void spin_model(uint64_t seed, uint64_t n, uint64_t *x, uint64_t *lo, uint64_t *hi)
{
    uint64_t a = seed, l = 0, h = 0;
    for (uint64_t i = 0; i < n; i++) {
        a = a * 6364136223846793005ull + 1442695040888963407ull;
        l += a;
        uint64_t t = l;
        l = h;
        h = t;
    }
    *x = a;
    *lo = l;
    *hi = h;
}

static bool spin_ok(const struct cmd_spin *s, char *why, size_t len)
{
    uint64_t x, lo, hi;
    spin_model(s->seed, s->iterations, &x, &lo, &hi);
    if (s->status != ENCL_OK)
        snprintf(why, len, "status %#" PRIx64, s->status);
    else if (s->x != x || s->lo != lo || s->hi != hi)
        snprintf(why, len, "after %" PRIu64 " iterations the enclave has x=%#" PRIx64 " xmm=%#" PRIx64
                 ":%#" PRIx64 ", want x=%#" PRIx64 " xmm=%#" PRIx64 ":%#" PRIx64,
                 s->iterations, s->x, s->hi, s->lo, x, hi, lo);
    else if (s->aex_seen < s->want)
        snprintf(why, len, "only %" PRIu64 " AEXs in %" PRIu64 " iterations", s->aex_seen, s->iterations);
    else if (!s->rip_in_loop)
        snprintf(why, len, "an AEX's RIP in SSA frame 0 lies outside the loop");
    else
        return true;
    return false;
}

enum { SPIN_MAX = 100000000 };
/* the paging test's first pattern */
enum { BIG_SEED = 4242 };

struct thread_job {
    uint64_t tcs;
    struct cmd_spin spin;
    int r;
    struct sgx_enclave_run run;
};

static void *thread_main(void *p)
{
    struct thread_job *j = p;
    j->r = call(j->tcs, CMD_SPIN, &j->spin, &j->run);
    return NULL;
}

/* The write to a page EMODPR made read-only: #PF with PFEC.SGX and W reported by the
 * vDSO, the enclave's handler (EXINFO: the address and error code) gives W back with
 * EMODPE, ERESUME retries the write. */
static bool write_via_handler(uint64_t page, struct handler_info *hi, char *why, size_t len)
{
    struct sgx_enclave_run run, fault;
    struct cmd_dyn d = {.op = DYN_WRITE, .offset = page - encl_base, .npages = 1, .seed = 78};
    bool handler_ok = false, resumed = false;
    int r = call(ENCL_TCS0, CMD_DYN, &d, &run);
    fault = run;
    if (r == 0 && run.function == ERESUME) {
        /* the handler's entry and ERESUME, whatever the checks below say: the TCS must
         * be back at CSSA 0 for the next checks */
        handler_ok = call(ENCL_TCS0, CMD_HANDLER, hi, &run) == 0 && run.function == EEXIT;
        memset(&run, 0, sizeof(run));
        run.tcs = encl_base + ENCL_TCS0;
        resumed = vdso_call(0, 0, 0, ERESUME, 0, 0, &run) == 0 && run.function == EEXIT;
    }
    if (r || fault.function != ERESUME || fault.exception_vector != 14 || fault.exception_error_code != 0x8007 ||
        fault.exception_addr != page)
        snprintf(why, len, "the write to the read-only page: vDSO %d, leaf %u, vector %u, error code %#x at %#llx "
                 "(want ERESUME after #PF 0x8007 at %#" PRIx64 ")", r, fault.function, fault.exception_vector,
                 fault.exception_error_code, (unsigned long long)fault.exception_addr, page);
    else if (!handler_ok || hi->status != ENCL_OK || hi->action != HANDLED_EMODPE || hi->exitinfo != 0x8000030e ||
             hi->maddr != page || hi->errcd != 0x8007)
        snprintf(why, len, "the handler: entry %s, action %" PRIu64 ", EXITINFO %#" PRIx64 ", EXINFO %#" PRIx64
                 " %#" PRIx64 " (want 0x8000030e, %#" PRIx64 " 0x8007)", handler_ok ? "ok" : "failed",
                 hi->action, hi->exitinfo, hi->maddr, hi->errcd, page);
    else if (!resumed || d.status != ENCL_OK)
        snprintf(why, len, "ERESUME of the write: %s", resumed ? "the command failed" : "no EEXIT");
    else
        return true;
    return false;
}

/* a fault outside the vDSO's reach (the plain EENTER's checks) ends the program with a
 * result line */
static const char *current = "setup";

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char buf[200];
    int n = snprintf(buf, sizeof(buf), "sgxtest: %s: FAIL: signal %d (code %d) at %p\n"
                     "sgxtest: done %d passed %d failed\n", current, sig, si->si_code, si->si_addr,
                     passed, failed + 1);
    if (write(1, buf, (size_t)n) < 0)
        _exit(2);
    _exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/sgx";
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO};
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);

    /* the files */
    size_t image_len, layout_len, sig_len, expect_len;
    uint8_t *image = read_file(dir, "encl.bin", &image_len);
    char *layout = (char *)read_file(dir, "encl.layout", &layout_len);
    uint8_t *sig = read_file(dir, "encl.sig", &sig_len);
    char *expect = (char *)read_file(dir, "encl.expect", &expect_len);
    uint8_t mrenclave[32], mrsigner[32];
    static struct page pages[MAX_PAGES];
    int npages = layout ? parse_layout(layout, pages) : -1;
    if (!image || image_len > ENCL_SIZE || npages <= 0 || !sig || sig_len != SIGSTRUCT_SIZE ||
        !expect || expect_len < 130 || !parse_hex(expect, mrenclave, 32) ||
        !parse_hex(expect + 65, mrsigner, 32)) {
        result("files", false, "%s lacks the enclave's image, layout, SIGSTRUCT or expected identity", dir);
        return finish();
    }

    /* the device */
    int fd = open("/dev/sgx_enclave", O_RDWR);
    if (fd < 0) {
        result("device", false, "/dev/sgx_enclave: %s", strerror(errno));
        return finish();
    }
    result("device", true, "/dev/sgx_enclave open");

    /* ELRANGE: a naturally aligned range of the enclave's size */
    uint8_t *area = mmap(NULL, 2 * ENCL_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        result("create", false, "cannot reserve the address range: %s", strerror(errno));
        return finish();
    }
    encl_base = ((uintptr_t)area + ENCL_SIZE - 1) & ~(uintptr_t)(ENCL_SIZE - 1);

    /* ECREATE */
    static uint8_t secs[PAGE] __attribute__((aligned(PAGE)));
    uint64_t attributes, xfrm;
    uint32_t miscselect;
    memcpy(&miscselect, sig + SS_MISCSELECT, 4);
    memcpy(&attributes, sig + SS_ATTRIBUTES, 8);
    memcpy(&xfrm, sig + SS_ATTRIBUTES + 8, 8);
    uint64_t size = ENCL_SIZE;
    uint32_t ssaframesize = 1;
    memcpy(secs + 0, &size, 8);
    memcpy(secs + 8, &encl_base, 8);
    memcpy(secs + 16, &ssaframesize, 4);
    memcpy(secs + 20, &miscselect, 4);
    memcpy(secs + 48, &attributes, 8);
    memcpy(secs + 56, &xfrm, 8);
    struct sgx_enclave_create create = {.src = (uintptr_t)secs};
    if (ioctl(fd, SGX_IOC_ENCLAVE_CREATE, &create)) {
        result("create", false, "SGX_IOC_ENCLAVE_CREATE: %s", strerror(errno));
        return finish();
    }
    result("create", true, "base %#" PRIx64 " size %#" PRIx64 " attributes %#" PRIx64 " xfrm %#" PRIx64,
           encl_base, size, attributes, xfrm);

    /* EADD (and EEXTEND): the layout's pages in its order, a run of alike pages per ioctl
     * (at most STAGE pages, staged: the image's bytes, or ENCL_BIG's pattern) */
    enum { STAGE = 256 };
    uint8_t *stage = aligned_alloc(PAGE, STAGE * PAGE);
    if (!stage)
        return finish();
    int added = 0, ioctls = 0;
    double t_add = now();
    for (int i = 0; i < npages;) {
        int j = i + 1;
        while (j < npages && j - i < STAGE && pages[j].offset == pages[j - 1].offset + PAGE &&
               pages[j].flags == pages[i].flags && pages[j].measure == pages[i].measure)
            j++;
        for (int k = i; k < j; k++) {
            uint8_t *p = stage + (size_t)(k - i) * PAGE;
            uint64_t off = pages[k].offset;
            memset(p, 0, PAGE);
            if (off < image_len)
                memcpy(p, image + off, image_len - off < PAGE ? image_len - off : PAGE);
            if (off - ENCL_BIG < (uint64_t)ENCL_BIG_PAGES * PAGE) {
                uint64_t v = encl_pattern(BIG_SEED, off);
                memcpy(p, &v, 8);
                v = ~v;
                memcpy(p + PAGE - 8, &v, 8);
            }
        }
        static struct { uint64_t flags; uint8_t reserved[56]; } secinfo __attribute__((aligned(64)));
        secinfo.flags = pages[i].flags;
        struct sgx_enclave_add_pages add = {
            .src = (uintptr_t)stage,
            .offset = pages[i].offset,
            .length = (uint64_t)(j - i) * PAGE,
            .secinfo = (uintptr_t)&secinfo,
            .flags = pages[i].measure ? SGX_PAGE_MEASURE : 0,
        };
        while (add.count < add.length) {
            struct sgx_enclave_add_pages part = add;
            part.src += add.count;
            part.offset += add.count;
            part.length -= add.count;
            part.count = 0;
            int r = ioctl(fd, SGX_IOC_ENCLAVE_ADD_PAGES, &part);
            ioctls++;
            add.count += part.count;
            if (r && errno != EINTR && errno != EAGAIN) {
                result("add-pages", false, "SGX_IOC_ENCLAVE_ADD_PAGES at %#" PRIx64 ": %s",
                       (uint64_t)(part.offset + part.count), strerror(errno));
                return finish();
            }
        }
        added += j - i;
        i = j;
    }
    result("add-pages", true, "%d pages in %d ioctls, %.1f s", added, ioctls, now() - t_add);

    /* EINIT */
    struct sgx_enclave_init init = {.sigstruct = (uintptr_t)sig};
    if (ioctl(fd, SGX_IOC_ENCLAVE_INIT, &init)) {
        result("init", false, "SGX_IOC_ENCLAVE_INIT: %s", strerror(errno));
        return finish();
    }
    result("init", true, "SIGSTRUCT accepted");

    /* the pages, mapped at their addresses with their permissions (a TCS: read-write) */
    int maps = 0;
    for (int i = 0; i < npages && pages[i].offset < ENCL_END;) {
        int j = i + 1;
        while (j < npages && pages[j].offset < ENCL_END && pages[j].offset == pages[j - 1].offset + PAGE &&
               prot(pages[j].flags) == prot(pages[i].flags))
            j++;
        void *at = (void *)(uintptr_t)(encl_base + pages[i].offset);
        if (mmap(at, (size_t)(j - i) * PAGE, prot(pages[i].flags), MAP_SHARED | MAP_FIXED, fd, 0) != at) {
            result("map", false, "mmap at offset %#" PRIx64 ": %s", pages[i].offset, strerror(errno));
            return finish();
        }
        maps++;
        i = j;
    }
    /* the rest of ELRANGE, read-write: ENCL_BIG, and the pages the enclave asks for at
     * run time */
    void *rest = (void *)(uintptr_t)(encl_base + ENCL_END);
    if (mmap(rest, ENCL_SIZE - ENCL_END, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != rest) {
        result("map", false, "mmap of the rest of ELRANGE: %s", strerror(errno));
        return finish();
    }
    maps++;
    result("map", true, "%d mappings", maps);

    vdso_enter = find_vdso_enter();
    if (!vdso_enter) {
        result("vdso", false, "no __vdso_sgx_enter_enclave in the vDSO");
        return finish();
    }
    result("vdso", true, "__vdso_sgx_enter_enclave at %p", (void *)vdso_enter);

    struct sgx_enclave_run run;
    const char *trouble;
    int r;

    current = "transform";
    /* a buffer in, its transform out, its checksum */
    {
        enum { LEN = 5000 };
        static uint8_t in[LEN], out[LEN];
        uint64_t h = 0xcbf29ce484222325ull, s = 12345;
        for (int i = 0; i < LEN; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            in[i] = (uint8_t)(s >> 33);
            h = (h ^ in[i]) * 0x100000001b3ull;
        }
        struct cmd_transform t = {.in = in, .out = out, .len = LEN, .key = 0x5a};
        r = call(ENCL_TCS0, CMD_TRANSFORM, &t, &run);
        int bad = -1;
        for (int i = 0; i < LEN && bad < 0; i++) {
            uint8_t b = in[LEN - 1 - i];
            if (out[i] != (uint8_t)((b << 3 | b >> 5) ^ 0x5a))
                bad = i;
        }
        if ((trouble = call_trouble(r, &run)))
            result("transform", false, "%s", trouble);
        else if (t.status != ENCL_OK || t.sum != h || bad >= 0)
            result("transform", false, "status %#" PRIx64 ", sum %#" PRIx64 " (want %#" PRIx64 "), first wrong byte %d",
                   t.status, t.sum, h, bad);
        else
            result("transform", true, "%d bytes, sum=%#" PRIx64, LEN, t.sum);
    }

    current = "count";
    /* the enclave's data lasts from one entry to the next */
    {
        uint64_t v[3] = {0};
        bool ok = true;
        for (int i = 0; i < 3 && ok; i++) {
            struct cmd_count c = {0};
            r = call(ENCL_TCS0, CMD_COUNT, &c, &run);
            if ((trouble = call_trouble(r, &run))) {
                result("count", false, "%s", trouble);
                ok = false;
                break;
            }
            v[i] = c.value;
        }
        if (ok)
            result("count", v[0] == COUNT_START + 1 && v[1] == COUNT_START + 2 && v[2] == COUNT_START + 3,
                   "%" PRIu64 " %" PRIu64 " %" PRIu64, v[0], v[1], v[2]);
    }

    current = "keys";
    /* EGETKEY */
    {
        struct cmd_keys k = {0};
        r = call(ENCL_TCS0, CMD_KEYS, &k, &run);
        if ((trouble = call_trouble(r, &run)))
            result("keys", false, "%s", trouble);
        else
            result("keys",
                   k.status == ENCL_OK && !k.egetkey_rax[0] && !k.egetkey_rax[1] && !k.egetkey_rax[2] &&
                       !k.egetkey_rax[3] && k.seal_same && k.signer_differs && k.keyid_differs &&
                       k.nonzero && k.bad_svn_rax == 64,
                   "status %#" PRIx64 ", EGETKEY %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                   ", seal key same twice %" PRIu64 ", by MRSIGNER other %" PRIu64
                   ", other KEYID other %" PRIu64 ", nonzero %" PRIu64 ", ISVSVN too high: %" PRIu64,
                   k.status, k.egetkey_rax[0], k.egetkey_rax[1], k.egetkey_rax[2], k.egetkey_rax[3],
                   k.seal_same, k.signer_differs, k.keyid_differs, k.nonzero, k.bad_svn_rax);
    }

    current = "report";
    /* EREPORT */
    {
        static struct cmd_report rep;
        for (int i = 0; i < 64; i++)
            rep.reportdata[i] = (uint8_t)(0xa5 ^ i * 7);
        r = call(ENCL_TCS0, CMD_REPORT, &rep, &run);
        uint64_t rattr[2];
        uint16_t prodid, svn, want_prodid, want_svn;
        memcpy(rattr, rep.report + REPORT_ATTRIBUTES, 16);
        memcpy(&prodid, rep.report + REPORT_ISVPRODID, 2);
        memcpy(&svn, rep.report + REPORT_ISVSVN, 2);
        memcpy(&want_prodid, sig + SS_ISVPRODID, 2);
        memcpy(&want_svn, sig + SS_ISVSVN, 2);
        char got[65];
        hex(got, rep.report + REPORT_MRENCLAVE, 32);
        if ((trouble = call_trouble(r, &run)))
            result("report", false, "%s", trouble);
        else if (rep.status != ENCL_OK || !rep.cmac_selftest)
            result("report", false, "status %#" PRIx64 ", the enclave's AES-CMAC %s RFC 4493",
                   rep.status, rep.cmac_selftest ? "matches" : "does not match");
        else if (memcmp(rep.report + REPORT_MRENCLAVE, mrenclave, 32) ||
                 memcmp(rep.report + REPORT_MRENCLAVE, sig + SS_ENCLAVEHASH, 32))
            result("report", false, "MRENCLAVE %s is not the signer's", got);
        else if (memcmp(rep.report + REPORT_MRSIGNER, mrsigner, 32))
            result("report", false, "MRSIGNER is not the hash of the signing key's modulus");
        else if (rattr[0] != (attributes | 1) || rattr[1] != xfrm || prodid != want_prodid || svn != want_svn)
            result("report", false, "attributes %#" PRIx64 " xfrm %#" PRIx64 " ISVPRODID %#x ISVSVN %u",
                   rattr[0], rattr[1], prodid, svn);
        else if (memcmp(rep.report + REPORT_DATA, rep.reportdata, 64))
            result("report", false, "REPORTDATA is not what the enclave was given");
        else if (rep.key_rax || !rep.mac_ok || !rep.other_mac_bad)
            result("report", false, "report key status %" PRIu64 ", own MAC %s, another target's MAC %s",
                   rep.key_rax, rep.mac_ok ? "checks" : "does not check",
                   rep.other_mac_bad ? "does not check" : "checks");
        else
            result("report", true, "mrenclave=%.16s..., attributes %#" PRIx64 ", MAC checked in the enclave", got,
                   rattr[0]);
    }

    current = "exception";
    /* an exception inside the enclave: AEX, the vDSO's report, the enclave's own handler
     * (CSSA 1), ERESUME */
    {
        struct cmd_ud2 u = {0};
        struct handler_info hi = {0};
        char why[256] = "";
        r = call(ENCL_TCS0, CMD_UD2, &u, &run);
        if (r || run.function != ERESUME || run.exception_vector != 6 || u.before != 1 || u.after)
            snprintf(why, sizeof(why), "ud2: vDSO %d, leaf %u, vector %u, before %" PRIu64 " after %" PRIu64,
                     r, run.function, run.exception_vector, u.before, u.after);
        if (!why[0]) {
            r = call(ENCL_TCS0, CMD_HANDLER, &hi, &run);
            if ((trouble = call_trouble(r, &run)))
                snprintf(why, sizeof(why), "the handler's entry: %s", trouble);
        }
        if (!why[0]) {
            memset(&run, 0, sizeof(run));
            run.tcs = encl_base + ENCL_TCS0;
            r = vdso_call(0, 0, 0, ERESUME, 0, 0, &run);
            if ((trouble = call_trouble(r, &run)))
                snprintf(why, sizeof(why), "ERESUME: %s", trouble);
        }
        if (!why[0] && (u.status != ENCL_OK || u.after != 1 || u.handled != 1 ||
                        u.exitinfo != 0x80000306 || u.handler_cssa != 1 || hi.status != ENCL_OK ||
                        hi.action != HANDLED_UD2))
            snprintf(why, sizeof(why), "status %#" PRIx64 ", after %" PRIu64 ", handled %" PRIu64
                     ", EXITINFO %#" PRIx64 " (want 0x80000306), handler's CSSA %" PRIu64 ", action %" PRIu64,
                     u.status, u.after, u.handled, u.exitinfo, u.handler_cssa, hi.action);
        /* the enclave is usable as before */
        struct cmd_count c = {0};
        if (!why[0] && ((trouble = call_trouble(call(ENCL_TCS0, CMD_COUNT, &c, &run), &run)) ||
                        c.value != COUNT_START + 4))
            snprintf(why, sizeof(why), "the next call: %s, counter %" PRIu64, trouble ? trouble : "ok",
                     c.value);
        result("exception", !why[0], "%s", why[0] ? why : "#UD reported by the vDSO, EXITINFO 0x80000306 "
                                                          "in SSA frame 0, skipped by the enclave's handler, resumed");
    }

    current = "debug";
    /* a debug enclave's memory through /proc/self/mem: Linux reads and writes it with
     * ENCLS[EDBGRD] and ENCLS[EDBGWR] */
    {
        char why[256] = "";
        uint64_t v = 0, w = 7000, after = 0;
        off_t at = (off_t)(encl_base + ENCL_COUNTER);
        struct cmd_count c = {0};
        int mem = open("/proc/self/mem", O_RDWR);
        if (mem < 0)
            snprintf(why, sizeof(why), "/proc/self/mem: %s", strerror(errno));
        else if (pread(mem, &v, 8, at) != 8)
            snprintf(why, sizeof(why), "reading the counter: %s", strerror(errno));
        else if (v != COUNT_START + 4)
            snprintf(why, sizeof(why), "read the counter as %" PRIu64 ", want %d", v, COUNT_START + 4);
        else if (pwrite(mem, &w, 8, at) != 8)
            snprintf(why, sizeof(why), "writing the counter: %s", strerror(errno));
        else if ((trouble = call_trouble(call(ENCL_TCS0, CMD_COUNT, &c, &run), &run)))
            snprintf(why, sizeof(why), "%s", trouble);
        else if (c.value != w + 1)
            snprintf(why, sizeof(why), "the enclave counted %" PRIu64 " after the write of %" PRIu64, c.value, w);
        else if (pread(mem, &after, 8, at) != 8 || after != w + 1)
            snprintf(why, sizeof(why), "read back %" PRIu64 ", want %" PRIu64, after, w + 1);
        if (mem >= 0)
            close(mem);
        result("debug", !why[0], "%s", why[0] ? why : "the counter read (1004), written (7000) and read "
                                                      "back after the enclave's increment (7001)");
    }

    current = "aex";
    /* AEXs: a loop long enough for timer interrupts, through a plain EENTER */
    {
        struct cmd_spin s = {.seed = 0x123456789abcdefull, .want = 3, .max = SPIN_MAX};
        char why[256];
        uint64_t before = sgx_aex_count;
        double t0 = now();
        sgx_enter_counted(encl_base + ENCL_TCS0, CMD_SPIN, &s);
        double t1 = now();
        uint64_t counted = sgx_aex_count - before;
        if (!spin_ok(&s, why, sizeof(why)))
            result("aex", false, "%s", why);
        else if (counted < s.aex_seen)
            result("aex", false, "the AEP counted %" PRIu64 " AEXs, the enclave saw %" PRIu64, counted, s.aex_seen);
        else
            result("aex", true, "%" PRIu64 " AEXs seen in SSA frame 0, %" PRIu64 " at the AEP, %" PRIu64
                   " iterations in %.2f s, result right", s.aex_seen, counted, s.iterations, t1 - t0);
    }

    current = "threads";
    /* two threads in the enclave at once, one per TCS */
    {
        static struct thread_job jobs[2];
        pthread_t th[2];
        bool ok = true;
        char why[300] = "";
        for (int i = 0; i < 2; i++) {
            jobs[i].tcs = i ? ENCL_TCS1 : ENCL_TCS0;
            jobs[i].spin = (struct cmd_spin){.seed = 1000 + i, .want = 2, .max = SPIN_MAX};
            if (pthread_create(&th[i], NULL, thread_main, &jobs[i])) {
                ok = false;
                snprintf(why, sizeof(why), "pthread_create failed");
            }
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < 2 && ok; i++) {
            char w[256];
            if ((trouble = call_trouble(jobs[i].r, &jobs[i].run))) {
                snprintf(why, sizeof(why), "thread %d: %s", i, trouble);
                ok = false;
            } else if (!spin_ok(&jobs[i].spin, w, sizeof(w))) {
                snprintf(why, sizeof(why), "thread %d: %s", i, w);
                ok = false;
            }
        }
        if (ok)
            result("threads", true, "TCS 0: %" PRIu64 " iterations, TCS 1: %" PRIu64 " iterations, results right",
                   jobs[0].spin.iterations, jobs[1].spin.iterations);
        else
            result("threads", false, "%s", why);
    }

    current = "einit-refused";
    /* EINIT refuses what does not match its signature: a second enclave with a SIGSTRUCT
     * whose signature has a flipped bit, and one with the right SIGSTRUCT but only its
     * first page (another MRENCLAVE); Linux answers EPERM for EINIT's error codes */
    {
        char why[200] = "";
        static uint8_t bad_sig[SIGSTRUCT_SIZE];
        for (int k = 0; k < 2 && !why[0]; k++) {
            const char *what = k ? "a different measurement" : "a bad signature";
            memcpy(bad_sig, sig, SIGSTRUCT_SIZE);
            if (!k)
                bad_sig[516 + 100] ^= 0x10; /* in the signature */
            int fd2 = open("/dev/sgx_enclave", O_RDWR);
            uint8_t *area2 = mmap(NULL, 2 * ENCL_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (fd2 < 0 || area2 == MAP_FAILED) {
                snprintf(why, sizeof(why), "%s: cannot open or reserve: %s", what, strerror(errno));
                break;
            }
            uint64_t base2 = ((uintptr_t)area2 + ENCL_SIZE - 1) & ~(uint64_t)(ENCL_SIZE - 1);
            static uint8_t secs2[PAGE] __attribute__((aligned(PAGE)));
            memcpy(secs2, secs, PAGE);
            memcpy(secs2 + 8, &base2, 8);
            static struct { uint64_t flags; uint8_t reserved[56]; } si __attribute__((aligned(64)));
            si.flags = pages[0].flags;
            memset(stage, 0, PAGE);
            memcpy(stage, image, image_len < PAGE ? image_len : PAGE);
            struct sgx_enclave_create c2 = {.src = (uintptr_t)secs2};
            struct sgx_enclave_add_pages a2 = {.src = (uintptr_t)stage, .offset = pages[0].offset, .length = PAGE,
                                               .secinfo = (uintptr_t)&si, .flags = SGX_PAGE_MEASURE};
            struct sgx_enclave_init i2 = {.sigstruct = (uintptr_t)bad_sig};
            if (ioctl(fd2, SGX_IOC_ENCLAVE_CREATE, &c2) || ioctl(fd2, SGX_IOC_ENCLAVE_ADD_PAGES, &a2))
                snprintf(why, sizeof(why), "%s: building it: %s", what, strerror(errno));
            else if (!ioctl(fd2, SGX_IOC_ENCLAVE_INIT, &i2))
                snprintf(why, sizeof(why), "%s: EINIT accepted it", what);
            else if (errno != EPERM)
                snprintf(why, sizeof(why), "%s: %s (want EPERM, EINIT's refusal)", what, strerror(errno));
            close(fd2);
            munmap(area2, 2 * ENCL_SIZE);
        }
        result("einit-refused", !why[0], "%s", why[0] ? why : "a bad signature and a different measurement");
    }

    current = "sgx2";
    /* SGX2 through the driver: EAUG (the enclave's EACCEPT faults, the kernel adds the
     * page), EMODPR (restrict to R) + EACCEPT, the write's #PF with the SGX bit, EMODPE
     * in the enclave's handler and the write retried, EMODT to PT_TRIM + EACCEPT +
     * removal, and a fresh page in its place */
    {
        char why[300] = "";
        struct cmd_dyn d;
        struct handler_info hi = {0};
        uint64_t page0 = encl_base + ENCL_DYN;
#define DYN(o, off, n, sd) \
    (d = (struct cmd_dyn){.op = (o), .offset = (off), .npages = (n), .seed = (sd)}, \
     call_trouble(call(ENCL_TCS0, CMD_DYN, &d, &run), &run))
#define DYN_BAD(what)                                                                              \
    snprintf(why, sizeof(why), "%s: %s", what,                                                     \
             trouble ? trouble : d.status != ENCL_OK ? "bad status" : d.rax ? "EACCEPT failed" : "wrong contents"), \
        snprintf(why + strlen(why), sizeof(why) - strlen(why), " (EACCEPT %" PRIu64 ", %" PRIu64 " bad from %#" PRIx64 ")", \
                 d.rax, d.bad, d.first_bad)
        struct sgx_enclave_restrict_permissions rp = {.offset = ENCL_DYN, .length = PAGE, .permissions = SI_R};
        struct sgx_enclave_modify_types mt = {.offset = ENCL_DYN + PAGE, .length = PAGE, .page_type = 4};
        struct sgx_enclave_remove_pages rm = {.offset = ENCL_DYN + PAGE, .length = PAGE};
        if ((trouble = DYN(DYN_ACCEPT, ENCL_DYN, 4, 77)) || d.status != ENCL_OK || d.rax || d.bad)
            DYN_BAD("EAUG + EACCEPT");
        else if (ioctl(fd, SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, &rp) || rp.result || rp.count != PAGE)
            snprintf(why, sizeof(why), "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS: %s, EMODPR %llu, count %llu",
                     strerror(errno), rp.result, rp.count);
        else if ((trouble = DYN(DYN_ACCEPT_PR, ENCL_DYN, 1, 77)) || d.status != ENCL_OK || d.rax || d.bad)
            DYN_BAD("EACCEPT of the restriction");
        else if (!write_via_handler(page0, &hi, why, sizeof(why)))
            ;
        else if ((trouble = DYN(DYN_CHECK, ENCL_DYN, 1, 78)) || d.status != ENCL_OK || d.bad)
            DYN_BAD("the write after EMODPE");
        else if (ioctl(fd, SGX_IOC_ENCLAVE_MODIFY_TYPES, &mt) || mt.result || mt.count != PAGE)
            snprintf(why, sizeof(why), "SGX_IOC_ENCLAVE_MODIFY_TYPES: %s, EMODT %llu, count %llu", strerror(errno),
                     mt.result, mt.count);
        else if ((trouble = DYN(DYN_ACCEPT_TRIM, ENCL_DYN + PAGE, 1, 0)) || d.status != ENCL_OK || d.rax)
            DYN_BAD("EACCEPT of PT_TRIM");
        else if (ioctl(fd, SGX_IOC_ENCLAVE_REMOVE_PAGES, &rm) || rm.count != PAGE)
            snprintf(why, sizeof(why), "SGX_IOC_ENCLAVE_REMOVE_PAGES: %s, count %llu", strerror(errno), rm.count);
        else if ((trouble = DYN(DYN_ACCEPT, ENCL_DYN + PAGE, 1, 79)) || d.status != ENCL_OK || d.rax || d.bad)
            DYN_BAD("a new page where the removed one was");
        else if ((trouble = DYN(DYN_CHECK, ENCL_DYN + 2 * PAGE, 2, 77)) || d.status != ENCL_OK || d.bad)
            DYN_BAD("the other pages");
        result("sgx2", !why[0], "%s", why[0] ? why : "4 pages EAUGed and accepted, one restricted to R (EMODPR), "
               "its write faulted (#PF 0x8007, EXINFO) until EMODPE, one trimmed (EMODT) and removed, then new");
    }

    current = "epc-paging";
    /* more enclave pages than the EPC holds: Linux pages them out (EBLOCK, ETRACK, EWB
     * into VA slots) and back in (ELDU) as the enclave touches them - ENCL_BIG's pages,
     * which the loader added with its pattern: checked and written anew, then every
     * fourth checked again */
    {
        char why[300] = "";
        uint64_t aex[2];
        double t[2];
        static const struct { uint64_t op, seed, stride; const char *what; } pass[2] = {
            {DYN_REWRITE, BIG_SEED, 1, "checking the loader's pattern, writing another"},
            {DYN_CHECK, BIG_SEED + 1, 4, "checking the enclave's"},
        };
        /* the EPC's size: CPUID leaf 12h's sections (subleaf 2 on) */
        uint64_t epc_pages = 0;
        for (unsigned sub = 2; sub < 10; sub++) {
            unsigned a, b, c, dx;
            __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(dx) : "a"(0x12), "c"(sub));
            if ((a & 0xf) != 1)
                break;
            epc_pages += ((uint64_t)(dx & 0xfffff) << 32 | (c & 0xfffff000u)) / PAGE;
        }
        for (int k = 0; k < 2 && !why[0]; k++) {
            struct cmd_dyn d = {.op = pass[k].op, .offset = ENCL_BIG, .npages = ENCL_BIG_PAGES,
                                .seed = pass[k].seed, .stride = pass[k].stride};
            uint64_t a0 = sgx_aex_count;
            double t0 = now();
            sgx_enter_counted(encl_base + ENCL_TCS0, CMD_DYN, &d);
            t[k] = now() - t0;
            aex[k] = sgx_aex_count - a0;
            if (d.status != ENCL_OK || d.bad)
                snprintf(why, sizeof(why), "%s: status %#" PRIx64 ", %" PRIu64 " bad pages from %#" PRIx64,
                         pass[k].what, d.status, d.bad, d.first_bad);
            /* the EPC cannot hold them all: every page that was out faulted when touched */
            else if (k == 0 && (epc_pages >= ENCL_BIG_PAGES || aex[k] < ENCL_BIG_PAGES - epc_pages))
                snprintf(why, sizeof(why), "%s: %" PRIu64 " AEXs for %d pages in an EPC of %" PRIu64 " pages",
                         pass[k].what, aex[k], ENCL_BIG_PAGES, epc_pages);
        }
        if (why[0])
            result("epc-paging", false, "%s", why);
        else
            result("epc-paging", true, "%d pages, the EPC %" PRIu64 ": checked and rewritten with %" PRIu64
                   " AEXs (%.1f s), every 4th checked with %" PRIu64 " (%.1f s), contents right",
                   ENCL_BIG_PAGES, epc_pages, aex[0], t[0], aex[1], t[1]);
    }

    close(fd);
    return finish();
}
