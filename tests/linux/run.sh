#!/usr/bin/env bash
# Boots Debian's own kernel on nestor with the test initramfs of scripts/linux.sh, whose
# /script prints uname, /proc/cpuinfo, /proc/interrupts, a computation, exact
# performance-counter counts, the date and the kernel log, then powers off (or reboots, with nestor.reboot=1). One line per check:
#   PASS linux:BOOT:CHECK
#   FAIL linux:BOOT:CHECK: why
# Boots (two at a time, the longest first):
#   bzimage-smp1  the bzImage through the Linux boot protocol, with its own decompressor
#   pvh-smp1      the uncompressed vmlinux through PVH, 1 vCPU, poweroff, with noapic
#   pvh-smp2      the same with 2 vCPUs, ending with reboot -f
#   vmx-smp1      the vmlinux through PVH, 1 vCPU, -cpu max (VMX): Linux loads kvm_intel
#                 and tests/linux/kvm_client.c runs its L2 guests through /dev/kvm
#   svm-smp1      the same with -cpu max,vendor=AuthenticAMD (SVM): kvm_amd, the same client
#   hyperv-smp2   the vmlinux through PVH, 2 vCPUs, with every Hyper-V enlightenment
#                 (-cpu max,hv-passthrough): Linux finds Hyper-V and takes its TSC-page
#                 clocksource, the synthetic timer's clockevents (direct mode), the
#                 enlightened APIC, and the hypercalls for remote TLB flushes and IPIs
#   hyperv-kvm-smp1 the same, 1 vCPU, as a hypervisor: kvm_intel takes Hyper-V's
#                 enlightened VMCS, and the KVM client's guests run through it
#   xen-hyperv-smp2 the vmlinux as a Xen PVH guest with Hyper-V's enlightenments too
#                 (Xen's leaves at 40000100h): Linux takes Hyper-V's, as on Xen with viridian
#   sgx-smp2      the vmlinux through PVH, 2 vCPUs, -cpu max with a 64 MiB EPC
#                 (-object memory-backend-epc + -M sgx-epc.0.memdev): Linux's SGX driver
#                 takes the EPC and offers /dev/sgx_enclave, and tests/linux/sgx_test.c
#                 builds the test's enclave through it, signed by tests/sgx/sgx_sign, and
#                 runs it (vDSO and plain EENTER; keys, reports, an exception handled
#                 inside, debug reads and writes, AEXs, two threads; SGX2's EAUG, EMODPR,
#                 EMODPE, EMODT and removal; 80 MiB of enclave pages paged out and in)
#   sgx-selftests-smp2 the same machine running Linux's own SGX selftests
#                 (tools/testing/selftests/sgx of Debian's linux-source package, fetched
#                 and built by tests/linux/sgx_selftests.sh): test_sgx's enclave, signed
#                 at run time, through the driver and the vDSO; EPC oversubscription
#                 (an enclave as big as the EPC, paged by Linux), SGX2's permission
#                 changes, EAUG, TCS creation and page removal. One check per case of its
#                 TAP output (a case the harness skips is reported as SKIP, neither
#                 passed nor failed), and its totals.
# and as a Xen guest (-xen), each with the event upcall path and event-channel ABI it
# asks of Linux:
#   xen-hvm-smp1  the bzImage as an HVM guest: callback vector, FIFO events
#   xen-hvm-smp2  the same with 2 vCPUs and 2-level events (xen.fifo_events=0), reboot
#   xen-pvh-smp2  the vmlinux as a PVH guest, 2 vCPUs: callback vector, FIFO events
#   xen-intx-smp1 the bzImage as an HVM guest with xen_no_vector_callback: the upcall is
#                 the platform PCI device's INTx through the I/O APIC
#   xen-pic-smp1  the same with noapic: through the 8259 at the IRQ the ACPI PCI
#                 interrupt link (LNKx, PIC mode) programmed into the router
# (Linux takes the per-vCPU upcall vector that Xen 4.17 offers in the others.)
# Boots in NOAPIC_BOOTS run with noapic: the 8259 and ACPI's PIC-mode PCI routing.
# The boots in S3_BOOTS also suspend to RAM (ACPI S3) and are woken by the RTC alarm.
#
#   tests/linux/run.sh [BOOT...]   all boots, or the named ones
#   LINUX_TIMEOUT=N                seconds per boot (default 600)
#   LINUX_RECHECK=1                check the logs of the last run again, without booting
# Logs: $BUILD/tests/linux/BOOT.log (serial console) and BOOT.err (nestor's stderr).
set -u
cd "$(dirname "$0")/../.."
SUITE=linux
WANT=("$@")
. tests/linux_boot.sh
LOGDIR=$BUILD/tests/linux
mkdir -p "$LOGDIR"

# name        kernel   vCPUs  ending    Xen: - (none), or upcall path,event ABI
BOOTS=(
  "sgx-selftests-smp2 vmlinux 2 poweroff -"
  "bzimage-smp1 vmlinuz 1     poweroff  -"
  "vmx-smp1     vmlinux 1     poweroff  -"
  "svm-smp1     vmlinux 1     poweroff  -"
  "xen-hvm-smp1 vmlinuz 1     poweroff  vector,fifo"
  "xen-hvm-smp2 vmlinuz 2     reboot    vector,2l"
  "pvh-smp1     vmlinux 1     poweroff  -"
  "hyperv-smp2  vmlinux 2     poweroff  -"
  "hyperv-kvm-smp1 vmlinux 1  poweroff  -"
  "sgx-smp2     vmlinux 2     poweroff  -"
  "pvh-smp2     vmlinux 2     reboot    -"
  "xen-pvh-smp2 vmlinux 2     poweroff  vector,fifo"
  "xen-hyperv-smp2 vmlinux 2  poweroff  vector,fifo"
  "xen-intx-smp1 vmlinuz 1    poweroff  intx,fifo"
  "xen-pic-smp1 vmlinuz 1     poweroff  pic,fifo"
)

# Boots with Hyper-V's enlightenments (-cpu max,hv-passthrough).
HYPERV_BOOTS="hyperv-smp2 xen-hyperv-smp2 hyperv-kvm-smp1"

# Boots (not Xen) with noapic.
NOAPIC_BOOTS="pvh-smp1"

# Boots whose script suspends to RAM (nestor.s3=1): the second CPU goes offline and back.
S3_BOOTS="pvh-smp2"

# Boots whose script loads KVM and runs the KVM client (nestor.kvm=1): with -cpu max
# (VMX, kvm_intel), or for the svm- ones -cpu max,vendor=AuthenticAMD (SVM, kvm_amd).
KVM_BOOTS="vmx-smp1 svm-smp1 hyperv-kvm-smp1"
# The client's checks, each of which must print "KVMTEST name PASS".
KVM_CHECKS="open api-version real-mode mmio long-mode interrupt regs two-vcpus"

# Boots with SGX (nestor.sgx=1): -cpu max and an EPC of SGX_EPC_SIZE in QEMU's spelling;
# the script runs the SGX test (tests/linux/sgx_test.c), whose checks must each print
# "sgxtest: name: ok (...)".
SGX_BOOTS="sgx-smp2"
SGX_EPC_SIZE=64M
SGX_CHECKS="device create add-pages init map vdso transform count keys report exception debug aex threads
            einit-refused sgx2 epc-paging"

# Boots with SGX that run Linux's own SGX selftests (nestor.sgx_selftests=1) instead of
# the SGX test: the same -cpu max and EPC.
SGX_SELFTEST_BOOTS="sgx-selftests-smp2"

# Kernel log lines (they start with a [seconds] stamp) that are bugs to fix in nestor.
FORBIDDEN='Oops|\bBUG\b|WARNING|[Uu]nstable|[Ll]ost .*interrupt|[Ss]purious|Call Trace|unchecked MSR access|Firmware Bug|FW BUG|Kernel panic|detected stall|soft lockup'
# PCI messages that report trouble.
PCI_TROUBLE='error|fail|conflict|invalid|can.t|cannot|not claimed|bad|disabled'

one_line() { head -n "${1:-3}" | tr -d '\r' | tr '\n' '|' | sed 's/|$//; s/|/ | /g' | cut -c1-300; }

# section NAME < log: the lines the script printed after "== NAME", up to the next "== ".
# Kernel messages on the console ("[ seconds] ...") may fall between the script's lines,
# or right after the start of one (before its newline): they are left out.
section() {
  tr -d '\r' | awk -v s="== $1" '/^\[ *[0-9]+\.[0-9]+\] / { next }
                                  { sub(/\[ *[0-9]+\.[0-9]+\] .*$/, "") }
                                  $0 == s { on = 1; next } /^== / { on = 0 } on'
}

boot() { # name kernel ncpus ending xen
  local name=$1 kernel=$KDIR/$2 ncpus=$3 ending=$4 xen=$5
  local log=$LOGDIR/$name.log err=$LOGDIR/$name.err
  local append="console=ttyS0 nestor.script=1" args=()
  [ "$ending" = reboot ] && append="$append nestor.reboot=1"
  is_s3_boot "$name" && append="$append nestor.s3=1"
  [[ " $NOAPIC_BOOTS " == *" $name "* ]] && append="$append noapic"
  if is_kvm_boot "$name"; then
    append="$append nestor.kvm=1"
    case $name in svm-*) args+=(-cpu max,vendor=AuthenticAMD) ;; *) args+=(-cpu max) ;; esac
  fi
  is_hyperv_boot "$name" && args+=(-cpu max,hv-passthrough)
  if is_sgx_boot "$name"; then
    append="$append nestor.sgx=1"
    args+=(-cpu max -object memory-backend-epc,id=epc0,size=$SGX_EPC_SIZE -M sgx-epc.0.memdev=epc0)
  fi
  if is_sgx_selftest_boot "$name"; then
    append="$append nestor.sgx_selftests=1"
    args+=(-cpu max -object memory-backend-epc,id=epc0,size=$SGX_EPC_SIZE -M sgx-epc.0.memdev=epc0)
  fi
  if [ "$xen" != - ]; then
    args+=(-xen)
    case $xen in *,2l) append="$append xen.fifo_events=0" ;; esac
    case $xen in
      intx,*) append="$append xen_no_vector_callback" ;;
      pic,*) append="$append xen_no_vector_callback noapic" ;;
    esac
  fi
  local start end rc
  start=$(date +%s)
  timeout -k 10 "$TIMEOUT" "$NESTOR" run -m 512M -smp "$ncpus" "${args[@]}" -kernel "$kernel" \
      -initrd "$KDIR/initramfs.cpio.gz" -append "$append" </dev/null >"$log" 2>"$err"
  rc=$?
  end=$(date +%s)
  echo "$rc $start $end" >"$LOGDIR/$name.status"
}

is_s3_boot() { [[ " $S3_BOOTS " == *" $1 "* ]]; }
is_kvm_boot() { [[ " $KVM_BOOTS " == *" $1 "* ]]; }
is_hyperv_boot() { [[ " $HYPERV_BOOTS " == *" $1 "* ]]; }
is_sgx_boot() { [[ " $SGX_BOOTS " == *" $1 "* ]]; }
is_sgx_selftest_boot() { [[ " $SGX_SELFTEST_BOOTS " == *" $1 "* ]]; }

# SGX: Linux takes the EPC section nestor offers (its size) without a complaint - every
# other kernel line that names SGX (feat_ctl's, the driver's) is one; the test program's
# own faults show in its checks -, both CPUs show sgx and sgx_lc, /dev/sgx_enclave
# appears, and every check of the SGX test passes.
check_sgx() { # name log
  local t=linux:$1 log=$2 kl sec
  kl=$(grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$log" | tr -d '\r' | sed 's/^\[[^]]*\] //')
  sec=$(section sgx <"$log")
  local epc others want
  # (the console and the script's dmesg both show the kernel's lines)
  epc=$(grep -E '^sgx: EPC section 0x[0-9a-f]+-0x[0-9a-f]+$' <<<"$kl" | awk '!seen[$0]++')
  others=$(grep -i 'sgx' <<<"$kl" | grep -vE '^sgx: EPC section 0x[0-9a-f]+-0x[0-9a-f]+$|^(Kernel )?[Cc]ommand line: |^sgx_test\[' |
           awk '!seen[$0]++')
  want=$(numfmt --from=iec "$SGX_EPC_SIZE")
  local lo hi
  read -r lo hi < <(sed -n 's/^sgx: EPC section 0x\([0-9a-f]*\)-0x\([0-9a-f]*\)$/\1 \2/p' <<<"$epc" | head -n 1)
  if [ "$(wc -l <<<"$epc")" -eq 1 ] && [ -n "$lo" ] && [ $((0x$hi - 0x$lo + 1)) -eq "$want" ] && [ -z "$others" ]; then
    echo "PASS $t:sgx-driver"
  else
    echo "FAIL $t:sgx-driver: want one EPC section of $SGX_EPC_SIZE and no other SGX message | ${epc:-no EPC section} | $(one_line 3 <<<"$others")"
  fi
  local flags
  flags=$(section cpuinfo <"$log" | grep '^flags')
  if [ -n "$flags" ] && ! grep -vwE 'sgx' <<<"$flags" | grep -q . && ! grep -vw 'sgx_lc' <<<"$flags" | grep -q .; then
    echo "PASS $t:cpuid-sgx"
  else
    echo "FAIL $t:cpuid-sgx: /proc/cpuinfo's flags lack sgx or sgx_lc on some CPU"
  fi
  if grep -qE '^c.* /dev/sgx_enclave$' <<<"$sec"; then
    echo "PASS $t:sgx-device"
  else
    echo "FAIL $t:sgx-device: want the character device /dev/sgx_enclave | $(grep -E 'sgx_enclave' <<<"$sec" | one_line 1)"
  fi
  local c line
  for c in $SGX_CHECKS; do
    line=$(grep -E "^sgxtest: $c: (ok|FAIL)( |:|$)" <<<"$sec" | head -n 1)
    if [[ $line == "sgxtest: $c: ok"* ]]; then
      echo "PASS $t:sgx:$c"
    else
      echo "FAIL $t:sgx:$c: ${line:-no result line}"
    fi
  done
  local n
  n=$(wc -w <<<"$SGX_CHECKS")
  if grep -qx "sgxtest: done $n passed 0 failed" <<<"$sec" && grep -qx 'sgx: test exit status 0' <<<"$sec"; then
    echo "PASS $t:sgx-done"
  else
    echo "FAIL $t:sgx-done: want $n passed 0 failed | $(grep -E '^sgxtest: (done|files)|^sgx: (test|no)' <<<"$sec" | one_line)"
  fi
}

# Linux's own SGX selftests (test_sgx, kselftest harness, TAP): the plan's every case
# has a result line - "ok N name" passes, "ok N name # SKIP why" (the harness's skip) is
# reported as SKIP, "not ok N name" fails with the harness's messages for the case -,
# the harness's totals count no failure and no error, and test_sgx exits with 0.
# selftest_messages NAME N < section: the harness's lines for a case, from its RUN line
# to its result
selftest_messages() {
  awk -v run="#  RUN           $1 ..." -v res="not ok $2 $1" \
      '$0 == run { on = 1; next } index($0, res) == 1 { on = 0 }
       on && /^# / && !/^# +(OK|FAIL) / && !/may take a while/ { sub(/^# /, ""); print }'
}

check_sgx_selftests() { # name log
  local t=linux:$1 log=$2 sec plan
  sec=$(section sgx-selftests <"$log")
  plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' <<<"$sec" | head -n 1)
  local line n rest name why results=0
  while read -r line; do
    results=$((results + 1))
    case $line in
      "ok "*" # SKIP"*)
        rest=${line#ok * }
        echo "SKIP $t:selftest:${rest%% # SKIP*}: skipped by the harness:${rest#* # SKIP}" ;;
      "ok "*)
        rest=${line#ok }
        echo "PASS $t:selftest:${rest#* }" ;;
      *)
        rest=${line#not ok }
        n=${rest%% *}
        name=${rest#* }
        name=${name%% # *}
        why=$(selftest_messages "$name" "$n" <<<"$sec")
        echo "FAIL $t:selftest:$name: $(one_line 4 <<<"$why")" ;;
    esac
  done < <(grep -E '^(not )?ok [0-9]+ ' <<<"$sec")
  local totals
  totals=$(grep -E '^# Totals: ' <<<"$sec" | head -n 1)
  if [ -n "$plan" ] && [ "$plan" -gt 0 ] && [ "$results" -eq "$plan" ] &&
     grep -qE '^# Totals: pass:[0-9]+ fail:0 xfail:0 xpass:0 skip:[0-9]+ error:0$' <<<"$totals" &&
     grep -qx 'sgx-selftests: exit status 0' <<<"$sec"; then
    echo "PASS $t:selftests-done"
  else
    echo "FAIL $t:selftests-done: want ${plan:-all the plan} results, no failure, exit status 0 | $results results | ${totals:-no totals} | $(grep -E '^sgx-selftests: ' <<<"$sec" | one_line 1)"
  fi
}

# Hyper-V's enlightenments: Linux detects Hyper-V (vendor "Microsoft Hv", the hypercall
# and VP index MSRs), switches to the reference TSC page, runs its clock events on
# synthetic timer 0 in direct mode (/proc/interrupts' HVS row counts them on every CPU),
# and uses the enlightened APIC and the hypercalls for remote TLB flushes and IPIs.
check_hyperv() { # name ncpus log
  local t=linux:$1 ncpus=$2 log=$3 kl irqs
  kl=$(grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$log" | tr -d '\r' | sed 's/^\[[^]]*\] //')
  irqs=$(section interrupts <"$log")
  if grep -qx 'Hypervisor detected: Microsoft Hyper-V' <<<"$kl" &&
     grep -qE '^Hyper-V: privilege flags low 0x[0-9a-f]+, high 0x[0-9a-f]+' <<<"$kl"; then
    echo "PASS $t:hyperv"
  else
    echo "FAIL $t:hyperv: $(grep -iE 'hypervisor|hyper-v' <<<"$kl" | one_line)"
  fi
  if grep -qx 'clocksource: Switched to clocksource hyperv_clocksource_tsc_page' <<<"$kl"; then
    echo "PASS $t:hyperv-clocksource"
  else
    echo "FAIL $t:hyperv-clocksource: $(grep -E 'clocksource: Switched|hyperv_clocksource' <<<"$kl" | one_line)"
  fi
  local row
  row=$(grep -E '^ *HVS:' <<<"$irqs")
  if [ -n "$row" ] && awk -v n="$ncpus" '{ for (i = 2; i <= n + 1; i++) if ($i + 0 == 0) exit 1 }' <<<"$row"; then
    echo "PASS $t:hyperv-stimer"
  else
    echo "FAIL $t:hyperv-stimer: want stimer0 interrupts on every CPU | ${row:-no HVS row} | $(grep -E 'LOC:' <<<"$irqs" | one_line 1)"
  fi
  if grep -qE '^Hyper-V: Using enlightened APIC \((xapic|x2apic) mode\)$' <<<"$kl"; then
    echo "PASS $t:hyperv-apic"
  else
    echo "FAIL $t:hyperv-apic: $(grep -iE 'enlightened|apic' <<<"$kl" | one_line)"
  fi
  if grep -qx 'Hyper-V: Using hypercall for remote TLB flush' <<<"$kl"; then
    echo "PASS $t:hyperv-tlbflush"
  else
    echo "FAIL $t:hyperv-tlbflush: $(grep -iE 'tlb' <<<"$kl" | one_line)"
  fi
  if grep -qx 'Hyper-V: Using IPI hypercalls' <<<"$kl"; then
    echo "PASS $t:hyperv-ipi"
  else
    echo "FAIL $t:hyperv-ipi: $(grep -iE 'ipi' <<<"$kl" | one_line)"
  fi
  # KVM in the guest takes the enlightened VMCS it is recommended (hv-evmcs)
  if is_kvm_boot "$1"; then
    if grep -qx 'KVM: vmx: using Hyper-V Enlightened VMCS' <<<"$kl"; then
      echo "PASS $t:hyperv-evmcs"
    else
      echo "FAIL $t:hyperv-evmcs: $(grep -iE 'enlightened|evmcs|kvm' <<<"$kl" | one_line)"
    fi
  fi
}

# KVM in the guest: the CPU offers VMX (SVM for the svm- boots), kvm_intel (kvm_amd)
# takes it (no "not supported" or "disabled by bios"), /dev/kvm appears, and every check
# of the KVM client passes.
check_kvm() { # name log
  local t=linux:$1 log=$2 kl sec flags ext=vmx mod=kvm_intel
  case $1 in svm-*) ext=svm mod=kvm_amd ;; esac
  kl=$(grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$log" | tr -d '\r' | sed 's/^\[[^]]*\] //')
  sec=$(section kvm <"$log")
  flags=$(section cpuinfo <"$log" | grep -m1 '^flags')
  if grep -qw $ext <<<"$flags"; then
    echo "PASS $t:cpuid-$ext"
  else
    echo "FAIL $t:cpuid-$ext: /proc/cpuinfo's flags lack $ext"
  fi
  local m missing=
  for m in irqbypass kvm $mod; do
    grep -qx "kvm: insmod $m: ok" <<<"$sec" || missing="$missing $m"
  done
  local refusal
  refusal=$(grep -iE 'kvm.*(not supported|disabled by bios|no hardware support|failed|error)|(vmx|svm).*(not supported|disabled)' <<<"$kl")
  if [ -z "$missing" ] && [ -z "$refusal" ]; then
    echo "PASS $t:kvm-modules"
  else
    echo "FAIL $t:kvm-modules: ${missing:+not loaded:$missing | }$(grep -E '^kvm: insmod' <<<"$sec" | one_line) | $(one_line 2 <<<"$refusal")"
  fi
  if grep -qE '^crw.* 10, +232 .*/dev/kvm$' <<<"$sec"; then
    echo "PASS $t:kvm-device"
  else
    echo "FAIL $t:kvm-device: want the character device 10,232 | $(grep -E 'dev/kvm' <<<"$sec" | one_line 1)"
  fi
  local c line
  for c in $KVM_CHECKS; do
    line=$(grep -E "^KVMTEST $c (PASS|FAIL)( |$)" <<<"$sec" | head -n 1)
    if [ "$line" = "KVMTEST $c PASS" ]; then
      echo "PASS $t:kvm:$c"
    else
      echo "FAIL $t:kvm:$c: ${line:-no result line}"
    fi
  done
  local n
  n=$(wc -w <<<"$KVM_CHECKS")
  if grep -qx "KVMTEST done $n passed 0 failed" <<<"$sec" && grep -qx 'kvm: client exit status 0' <<<"$sec"; then
    echo "PASS $t:kvm-done"
  else
    echo "FAIL $t:kvm-done: want $n passed 0 failed | $(grep -E '^KVMTEST done|^kvm: (client|no)' <<<"$sec" | one_line)"
  fi
}

# Kernel log lines (stdin) less, for an S3 boot, the one message Linux itself causes
# while it suspends: an HPET-emulated RTC tick (64 Hz while the wake alarm is armed)
# that arrives after Linux suspended its device interrupts is replayed on resume, and
# Linux counts "lost" ticks against the HPET counter it restarted from 0 meanwhile.
s3_known_lines() { # name
  if is_s3_boot "$1"; then
    awk '/PM: suspend entry/ { s = 1 } /PM: suspend exit/ { s = 0 }
         !(s && /\] hpet: Lost [0-9]+ RTC interrupts$/)'
  else
    cat
  fi
}

# Kernel log lines (stdin) less, for a Hyper-V boot, Linux's own verdict on a Hyper-V
# that does not offer the TSC-invariance control (privilege bit 15): it takes the
# reference TSC page instead of the TSC, as on Hyper-V and KVM.
hyperv_known_lines() { # name
  if is_hyperv_boot "$1"; then
    grep -vE '\] tsc: Marking TSC unstable due to running on Hyper-V$'
  else
    cat
  fi
}

# ACPI S3: the kernel offers "deep" sleep, enters and leaves it (CPUs taken offline and
# back), the RTC alarm wakes it about 2 s later, and the script goes on.
check_s3() { # name ncpus log
  local t=linux:$1:suspend ncpus=$2 log=$3
  local sec kernel
  sec=$(section suspend <"$log")
  kernel=$(grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$log" | tr -d '\r' | sed 's/^\[[^]]*\] //')
  local slept
  slept=$(sed -n 's/^suspend: slept \([0-9]*\) s$/\1/p' <<<"$sec")
  if ! grep -q '\[deep\]' <<<"$sec"; then
    echo "FAIL $t: /sys/power/mem_sleep does not offer deep (S3): '$(one_line 1 <<<"$sec")'"
  elif ! awk '/^PM: suspend entry \(deep\)$/ { e = 1 } e && /^ACPI: PM: Waking up from system sleep state S3$/ { w = 1 }
              w && /^PM: suspend exit$/ { x = 1 } END { exit !x }' <<<"$kernel"; then
    echo "FAIL $t: no suspend entry (deep) .. S3 wake .. suspend exit | $(grep -E '^(PM|ACPI: PM):' <<<"$kernel" | one_line 4)"
  elif [ "$ncpus" -gt 1 ] && ! grep -qx "CPU$((ncpus - 1)) is up" <<<"$kernel"; then
    echo "FAIL $t: the non-boot CPUs did not come back | $(grep -E 'smpboot|CPU[0-9]' <<<"$kernel" | tail -n 3 | one_line)"
  elif ! grep -qx 'suspend: resumed' <<<"$sec" || [ -z "$slept" ] || [ "$slept" -lt 1 ] || [ "$slept" -gt 10 ]; then
    echo "FAIL $t: the script after the wake: '$(one_line 3 <<<"$sec")'"
  else
    echo "PASS $t"
  fi
}

# A Xen guest (-xen): Linux finds Xen 4.17 as an HVM or PVH guest, takes the Xen
# clocksource (the pvclock), the event-channel ABI and upcall path it was asked for, and
# sets up grant tables (HVM: through the platform PCI device's driver).
check_xen() { # name kernel xen log
  local t=linux:$1 kernel=$2 xen=$3 log=$4 kl irqs
  kl=$(grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$log" | tr -d '\r' | sed 's/^\[[^]]*\] //')
  irqs=$(section interrupts <"$log")
  local booting='Booting paravirtualized kernel on Xen HVM'
  [ "$kernel" = vmlinux ] && booting='Booting kernel on Xen PVH'
  if grep -qx 'Hypervisor detected: Xen HVM' <<<"$kl" && grep -qx 'Xen version 4.17.' <<<"$kl" &&
     grep -qx "$booting" <<<"$kl"; then
    echo "PASS $t:xen"
  else
    echo "FAIL $t:xen: want Xen 4.17, '$booting' | $(grep -iE 'hypervisor|xen version|booting' <<<"$kl" | one_line)"
  fi
  # Linux sets up Xen's clock (and timer) only with the vector callback
  # (xen_hvm_init_time_ops): with the platform INTx it keeps its own, the TSC.
  local clock=xen
  case ${xen%,*} in intx|pic) clock=tsc ;; esac
  if grep -qx "clocksource: Switched to clocksource $clock" <<<"$kl"; then
    echo "PASS $t:xen-clocksource"
  else
    echo "FAIL $t:xen-clocksource: want $clock | $(grep -E 'clocksource: Switched|xen.*(clock|time)' <<<"$kl" | one_line)"
  fi
  local abi='xen:events: Using FIFO-based ABI'
  [ "${xen#*,}" = 2l ] && abi='xen:events: Using 2-level ABI'
  if grep -qx "$abi" <<<"$kl"; then
    echo "PASS $t:xen-events"
  else
    echo "FAIL $t:xen-events: want '$abi' | $(grep -E 'xen:events' <<<"$kl" | one_line)"
  fi
  # the upcalls arrived by the path asked for: the callback vector's HYP count, or the
  # platform device's interrupt line through the I/O APIC or the 8259
  local row
  case ${xen%,*} in
    vector)
      row=$(grep -E '^ *HYP:' <<<"$irqs")
      if grep -qx 'xen:events: Xen HVM callback vector for event delivery is enabled' <<<"$kl" &&
         awk '{ s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; exit !(s > 0) }' <<<"$row"; then
        echo "PASS $t:xen-callback"
      else
        echo "FAIL $t:xen-callback: vector callback | $(grep -iE 'callback' <<<"$kl" | one_line 2) | $row"
      fi ;;
    intx|pic)
      # the platform device's interrupt: an ACPI link enabled it at IRQ N (GSIx in APIC
      # mode, LNKx in PIC mode), and /proc/interrupts counts its upcalls on line N
      local chip=IO-APIC link=GSI n
      [ "${xen%,*}" = pic ] && chip=XT-PIC link=LNK
      n=$(sed -n "s/^ACPI: \\\\_SB_\.$link[A-D]: Enabled at IRQ \([0-9]*\)$/\1/p" <<<"$kl" | head -n 1)
      row=$(grep -E 'xen-platform-pci' <<<"$irqs")
      if ! grep -q 'callback vector' <<<"$kl" && grep -q "$chip" <<<"$row" && [ -n "$n" ] &&
         [ "$(awk '{ print $1 }' <<<"$row")" = "$n:" ] &&
         awk '{ s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; exit !(s > 0) }' <<<"$row"; then
        echo "PASS $t:xen-callback"
      else
        echo "FAIL $t:xen-callback: want xen-platform-pci interrupts through $chip at the IRQ of $link${n:+ (}${n}${n:+)} | ${row:-no such line} | $(grep -iE 'callback|Enabled at IRQ' <<<"$kl" | one_line 2)"
      fi ;;
  esac
  # pirqs (XENFEAT_hvm_pirqs): an HVM guest with the vector callback registers its GSIs
  # as pirqs, as on Xen 4.17 (the SCI, GSI 9, takes the first: pirq 16); the serial line
  # and the SCI are xen-pirq interrupts, the serial one delivered. A PVH domain and an
  # HVM one without the vector callback have none.
  local pirq_rows
  pirq_rows=$(grep -E 'xen-pirq' <<<"$irqs")
  if [ "$kernel" = vmlinuz ] && [ "${xen%,*}" = vector ]; then
    if grep -qx 'xen: --> pirq=16 -> irq=9 (gsi=9)' <<<"$kl" &&
       grep -qE 'xen-pirq +9-ioapic-level +acpi$' <<<"$pirq_rows" &&
       awk '/xen-pirq +4-ioapic-edge +ttyS0$/ { s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; f = s > 0 }
            END { exit !f }' <<<"$pirq_rows"; then
      echo "PASS $t:xen-pirqs"
    else
      echo "FAIL $t:xen-pirqs: want the SCI as pirq 16, acpi and ttyS0 (with interrupts) as xen-pirq | $(grep -E 'pirq=' <<<"$kl" | one_line 2) | $(grep -E 'ttyS0|acpi' <<<"$irqs" | one_line 2)"
    fi
  elif [ -z "$pirq_rows" ] && ! grep -q 'pirq=' <<<"$kl"; then
    echo "PASS $t:xen-pirqs"
  else
    echo "FAIL $t:xen-pirqs: no pirqs expected here | $(one_line 2 <<<"$pirq_rows")"
  fi
  if grep -qx 'xen:grant_table: Grant tables using version 1 layout' <<<"$kl" &&
     grep -qx 'Grant table initialized' <<<"$kl"; then
    echo "PASS $t:xen-grant-tables"
  else
    echo "FAIL $t:xen-grant-tables: $(grep -iE 'grant' <<<"$kl" | one_line)"
  fi
  # the balloon driver gave 16 MiB back (decrease_reservation) and took it again
  # (populate_physmap), each time reaching its target
  local bal
  bal=$(section balloon <"$log")
  if [ "$(grep -cE '^balloon: target ([0-9]+) kB, current \1 kB$' <<<"$bal")" -eq 2 ] &&
     ! grep -qiE 'xen.?balloon.*(fail|error|cannot|warn)' <<<"$kl"; then
    echo "PASS $t:xen-balloon"
  else
    echo "FAIL $t:xen-balloon: $(one_line 2 <<<"$bal") | $(grep -iE 'balloon' <<<"$kl" | one_line 2)"
  fi
}

check() { # name kernel ncpus ending xen
  local name=$1 ncpus=$3 ending=$4 xen=$5 t=linux:$1
  local log=$LOGDIR/$name.log err=$LOGDIR/$name.err
  local rc start end
  read -r rc start end <"$LOGDIR/$name.status"

  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "FAIL $t:exit: no $ending within ${TIMEOUT}s | $(tail -n 3 "$log" | one_line)"
  elif [ "$rc" -ne 0 ]; then
    echo "FAIL $t:exit: nestor exited with status $rc after $ending | $(one_line <"$err")"
  elif ! tr -d '\r' <"$log" | grep -qx '== done'; then
    echo "FAIL $t:exit: status 0 before the script finished | $(tail -n 3 "$log" | one_line)"
  else
    echo "PASS $t:exit"
  fi

  local kernel_lines
  kernel_lines=$(grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$log" | tr -d '\r')

  local uname
  uname=$(section uname <"$log")
  if grep -qE '^Linux .* [0-9]+\.[0-9]+\.[0-9]+-[0-9]+-amd64 .*x86_64' <<<"$uname"; then
    echo "PASS $t:uname"
  else
    echo "FAIL $t:uname: '$(one_line 1 <<<"$uname")'"
  fi

  local processors
  processors=$(section cpuinfo <"$log" | grep -c '^processor')
  if [ "$processors" -eq "$ncpus" ] &&
     grep -qE "smp: Brought up 1 node, $ncpus CPUs?$" <<<"$(sed 's/^\[[^]]*\] //' <<<"$kernel_lines")"; then
    echo "PASS $t:cpus-online"
  else
    echo "FAIL $t:cpus-online: /proc/cpuinfo lists $processors of $ncpus | $(grep -E 'smp: Brought up|smpboot: .*(failed|stuck)' <<<"$kernel_lines" | one_line)"
  fi

  # /proc/interrupts: one column per CPU; every CPU took local timer interrupts.
  local irqs cols loc
  irqs=$(section interrupts <"$log")
  # (the header row by its name: a kernel message cut out of the capture can leave an
  # empty line before it)
  cols=$(grep -m1 -E '^ *CPU0( |$)' <<<"$irqs" | wc -w)
  loc=$(grep -E '^ *LOC:' <<<"$irqs")
  # A Xen guest's clock events are each CPU's VIRQ_TIMER (row timerN), not its LAPIC
  # timer: there, CPU N's own column of timerN counts instead of LOC.
  # (Without the vector callback Linux keeps the LAPIC timer, as it keeps the TSC.)
  local ticks_ok=1 i
  if is_hyperv_boot "$name" && [ "$xen" = - ]; then
    ticks_ok=1 # the clock events are the synthetic timer's (check_hyperv)
  elif [ "${xen%,*}" = vector ]; then
    for ((i = 0; i < ncpus; i++)); do
      awk -v c=$((i + 2)) -v row="timer$i" '$NF == row && $c + 0 > 0 { f = 1 } END { exit !f }' <<<"$irqs" || ticks_ok=0
    done
  elif [ -z "$loc" ] || ! awk -v n="$ncpus" '{ for (i = 2; i <= n + 1; i++) if ($i + 0 == 0) exit 1 }' <<<"$loc"; then
    ticks_ok=0
  fi
  if [ "$cols" -eq "$ncpus" ] && [ "$ticks_ok" = 1 ] && grep -qE '^ *0:.*timer' <<<"$irqs"; then
    echo "PASS $t:interrupts"
  else
    echo "FAIL $t:interrupts: $cols CPU columns | $(grep -E 'CPU0|^ *0:|LOC:|timer[0-9]' <<<"$irqs" | one_line 5)"
  fi

  if section compute <"$log" | grep -qx 'sum of squares below 1000: 332833500'; then
    echo "PASS $t:compute"
  else
    echo "FAIL $t:compute: '$(section compute <"$log" | one_line 1)'"
  fi

  # The RTC starts at the host's time and guest time follows host time: the date the
  # guest prints lies between the start and the end of the run.
  local shown when
  shown=$(section date <"$log" | head -n 1)
  when=$(date -d "$shown" +%s 2>/dev/null || echo 0)
  if [ "$when" -ge $((start - 2)) ] && [ "$when" -le $((end + 2)) ]; then
    echo "PASS $t:date"
  else
    echo "FAIL $t:date: guest date '$shown' is outside the run ($(date -u -d "@$start" '+%T')-$(date -u -d "@$end" '+%T') UTC)"
  fi

  local bad
  bad=$(s3_known_lines "$name" <<<"$kernel_lines" | hyperv_known_lines "$name" |
        grep -E "$FORBIDDEN" | awk '!seen[$0]++')
  if [ -z "$kernel_lines" ]; then
    echo "FAIL $t:kernel-log: no kernel messages"
  elif [ -n "$bad" ]; then
    echo "FAIL $t:kernel-log: $(one_line 4 <<<"$bad")"
  else
    echo "PASS $t:kernel-log"
  fi

  is_s3_boot "$name" && check_s3 "$name" "$ncpus" "$log"
  is_kvm_boot "$name" && check_kvm "$name" "$log"
  is_sgx_boot "$name" && check_sgx "$name" "$log"
  is_sgx_selftest_boot "$name" && check_sgx_selftests "$name" "$log"
  is_hyperv_boot "$name" && [ "$xen" = - ] && check_hyperv "$name" "$ncpus" "$log"
  [ "$xen" != - ] && check_xen "$name" "$2" "$xen" "$log"
  check_pmu "$name" "$log"

  local pci
  pci=$(grep -i 'pci' <<<"$kernel_lines" | grep -iE "$PCI_TROUBLE")
  if ! grep -qE 'pci 0000:00:00\.0: \[8086:29c0\]' <<<"$kernel_lines"; then
    echo "FAIL $t:pci: the host bridge 00:00.0 was not enumerated"
  elif [ -n "$pci" ]; then
    echo "FAIL $t:pci: $(one_line 3 <<<"$pci")"
  else
    echo "PASS $t:pci"
  fi
}

# The performance counters: the kernel's perf driver takes the PMU, the NMI watchdog runs
# on it without complaint, and user-mode instructions counted with perf_event_open around
# loops of N and 2N iterations of "dec; jnz" (tests/linux/perfcount.c) differ by exactly
# 2N. (The kernel's INFO that an NMI handler "took too long" measures time, which
# follows the host's clock: it reports a loaded host, not a fault, and is not checked.)
PMU_TROUBLE='no PMU driver|unsupported|Broken PMU|Failed to access perfctr|hard LOCKUP|NMI received for unknown reason|Dazed and confused'
check_pmu() { # name log
  local t=linux:$1 log=$2 kl
  kl=$(grep -aE '^\[ *[0-9]+\.[0-9]+\]' "$log" | tr -d '\r' | sed 's/^\[[^]]*\] //')
  # (Linux turns its NMI watchdog off on Hyper-V: ms_hyperv_init_platform)
  local watchdog='NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.'
  is_hyperv_boot "$1" && watchdog=
  if grep -qE '^Performance Events: .*(Intel|AMD) PMU driver\.$' <<<"$kl" &&
     { [ -z "$watchdog" ] || grep -qx "$watchdog" <<<"$kl"; } &&
     ! grep -qiE "$PMU_TROUBLE" <<<"$kl"; then
    echo "PASS $t:pmu-driver"
  else
    echo "FAIL $t:pmu-driver: $(grep -iE 'Performance Events|NMI watchdog|PMU|LOCKUP|NMI' <<<"$kl" | one_line 3)"
  fi
  local perf n1 c1 n2 c2
  perf=$(section perf <"$log")
  read -r n1 c1 n2 c2 < <(sed -n 's/^instructions, loop of \([0-9]*\): \([0-9]*\)$/\1 \2/p' <<<"$perf" | tr '\n' ' ')
  if [ -n "${c2:-}" ] && [ "$n2" -eq $((2 * n1)) ] && [ $((c2 - c1)) -eq $((2 * n1)) ]; then
    echo "PASS $t:perf-exact"
  else
    echo "FAIL $t:perf-exact: $(one_line 3 <<<"$perf")"
  fi
}

if [ ! -f "$KDIR/vmlinux" ] || [ ! -f "$KDIR/vmlinuz" ] || [ ! -f "$KDIR/initramfs.cpio.gz" ]; then
  echo "FAIL linux:fetch: $KDIR lacks the kernel or initramfs (scripts/linux.sh $KDIR)"
  exit 0
fi
if [ ! -x "$NESTOR" ]; then
  echo "FAIL linux:nestor: $NESTOR is not built"
  exit 0
fi

# Two boots at a time: each runs on one host thread.
running=0
[ "${LINUX_RECHECK:-0}" = 1 ] && BOOTS_TO_RUN=() || BOOTS_TO_RUN=("${BOOTS[@]}")
for b in "${BOOTS_TO_RUN[@]}"; do
  read -r name kernel ncpus ending xen <<<"$b"
  selected "$name" || continue
  rm -f "$LOGDIR/$name.status"
  boot "$name" "$kernel" "$ncpus" "$ending" "$xen" &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

for b in "${BOOTS[@]}"; do
  read -r name kernel ncpus ending xen <<<"$b"
  selected "$name" || continue
  if [ -f "$LOGDIR/$name.status" ]; then
    check "$name" "$kernel" "$ncpus" "$ending" "$xen"
  else
    echo "FAIL linux:$name:exit: the boot did not run"
  fi
done
