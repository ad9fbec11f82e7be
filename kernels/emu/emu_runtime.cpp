// CPU runtime of the CUDA emulator: runs a grid of kernel blocks on a pool of OS threads; the
// threads of a block are cooperative fibers on one OS thread that switch only at __syncthreads
// and warp collectives. See README.md.
//
// Scheduling, per block. A "runner" is a fiber stack that starts CUDA threads one after another
// (in schedule order) with plain calls, so a kernel with no barrier costs one function call per
// thread and no context switch at all. A thread that blocks (barrier, collective) keeps the
// runner's stack, and the next thread to run gets a new runner. What runs next is decided by
// pick_next(), called by whichever context gives up the CPU, which switches straight to the next
// fiber (one switch per thread per barrier; going through a scheduler context would take two).
// It makes passes over the threads in schedule order (increasing, or decreasing for schedule 1)
// resuming the runnable ones; when none is left, either the whole block waits at __syncthreads
// (release it and start a new pass), or every thread exited (block done), or it is stuck: an
// error. The OS thread's own stack (Worker::sched) only starts and ends blocks.
#include "emu_abi.h"
#include "emu_shared.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) && !defined(DARTS_EMU_UCONTEXT)
#define DARTS_EMU_ASM_SWITCH 1
#else
#define DARTS_EMU_ASM_SWITCH 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define DARTS_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#else
#define DARTS_EMU_ASAN 0
#endif

#if DARTS_EMU_ASM_SWITCH
// Saves the callee-saved registers and the stack pointer of the running context in *save_sp and
// resumes the one saved at load_sp. No signal-mask syscall (swapcontext makes one per switch).
// MXCSR and the x87 control word are not switched: all fibers of an OS thread share them.
extern "C" void darts_emu_ctx_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl darts_emu_ctx_switch
    .hidden darts_emu_ctx_switch
    .type darts_emu_ctx_switch,@function
    .p2align 4
darts_emu_ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size darts_emu_ctx_switch, .-darts_emu_ctx_switch
)");
#endif

namespace darts_emu {

__thread ThreadRec* tls_thread DARTS_EMU_TLS_MODEL = nullptr;
__thread BlockRec* tls_block DARTS_EMU_TLS_MODEL = nullptr;

namespace {

constexpr unsigned kMaxBlockThreads = 1024;
constexpr size_t kMaxDynSmem = 227 * 1024;  // Hopper's opt-in maximum per block
constexpr size_t kSmemCanary = 256;         // checked after each block to catch overruns
constexpr unsigned char kCanaryByte = 0xA5;
constexpr size_t kDefaultStack = 64 * 1024;
constexpr size_t kMinStack = 16 * 1024;
constexpr unsigned kMaxWorkers = 256;
constexpr size_t kAltStack = 64 * 1024;  // alternate signal stack of threads that run blocks

std::atomic<size_t> g_stack_size{0};  // 0: not yet read from the environment

size_t page_size() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

size_t stack_size_setting() {
    size_t s = g_stack_size.load(std::memory_order_relaxed);
    if (s == 0) {
        s = kDefaultStack;
        if (const char* e = std::getenv("DARTS_EMU_STACK_KB")) {
            const unsigned long kb = std::strtoul(e, nullptr, 10);
            if (kb > 0) s = kb * 1024;
        }
        const size_t p = page_size();
        s = std::max(kMinStack, (s + p - 1) / p * p);
        g_stack_size.store(s, std::memory_order_relaxed);
    }
    return s;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

// "0-3,7,9-31"
std::string lane_list(unsigned lanes) {
    std::string s;
    for (unsigned l = 0; l < 32;) {
        if (!(lanes >> l & 1)) {
            ++l;
            continue;
        }
        unsigned e = l;
        while (e + 1 < 32 && (lanes >> (e + 1) & 1)) ++e;
        if (!s.empty()) s += ',';
        s += e == l ? format("%u", l) : format("%u-%u", l, e);
        l = e + 1;
    }
    return s;
}

const char* op_name(int op) {
    switch (op) {
        case kSync: return "__syncwarp";
        case kShflIdx: return "__shfl_sync";
        case kShflUp: return "__shfl_up_sync";
        case kShflDown: return "__shfl_down_sync";
        case kShflXor: return "__shfl_xor_sync";
        case kBallot: return "__ballot_sync";
        case kAny: return "__any_sync";
        case kAll: return "__all_sync";
        case kReduceAddU: return "__reduce_add_sync";
        case kReduceMinU:
        case kReduceMinI: return "__reduce_min_sync";
        case kReduceMaxU:
        case kReduceMaxI: return "__reduce_max_sync";
        case kReduceAnd: return "__reduce_and_sync";
        case kReduceOr: return "__reduce_or_sync";
        case kReduceXor: return "__reduce_xor_sync";
        default: return "warp collective";
    }
}

// ---------------------------------------------------------------- contexts and stacks

struct Ctx {
#if DARTS_EMU_ASM_SWITCH
    void* sp = nullptr;
#else
    ucontext_t uc;
#endif
#if DARTS_EMU_ASAN
    const void* lo = nullptr;  // bounds of the stack this context runs on
    size_t size = 0;
    void* fake = nullptr;
#endif
};

void ctx_init(Ctx& c, unsigned char* lo, size_t size, void (*entry)()) {
#if DARTS_EMU_ASAN
    // A reused stack still carries the redzones of frames that never returned.
    ASAN_UNPOISON_MEMORY_REGION(lo, size);
#endif
#if DARTS_EMU_ASM_SWITCH
    // Frame popped by darts_emu_ctx_switch: six registers, then `ret` into entry, which then
    // sees %rsp % 16 == 8 as after a call (its own return address is a null trap).
    auto top = (reinterpret_cast<uintptr_t>(lo) + size) & ~uintptr_t{15};
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;
    *--sp = reinterpret_cast<void*>(entry);
    for (int i = 0; i < 6; ++i) *--sp = nullptr;
    c.sp = sp;
#else
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = lo;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
#endif
#if DARTS_EMU_ASAN
    c.lo = lo;
    c.size = size;
#endif
}

// Switches from the running context (saved in `from`) to `to`. from_dead: `from` is never
// resumed (lets ASan drop its fake stack).
inline void ctx_switch(Ctx& from, Ctx& to, bool from_dead) {
#if DARTS_EMU_ASAN
    __sanitizer_start_switch_fiber(from_dead ? nullptr : &from.fake, to.lo, to.size);
#else
    (void)from_dead;
#endif
#if DARTS_EMU_ASM_SWITCH
    darts_emu_ctx_switch(&from.sp, to.sp);
#else
    swapcontext(&from.uc, &to.uc);
#endif
#if DARTS_EMU_ASAN
    __sanitizer_finish_switch_fiber(from.fake, nullptr, nullptr);
#endif
}

struct Stack {
    unsigned char* map = nullptr;  // guard page + stack
    size_t map_size = 0;
    unsigned char* lo = nullptr;
    size_t size = 0;  // usable size, below a per-stack colour offset
};

// A PROT_NONE page below each stack turns an overflow into a fault instead of silently
// corrupting the neighbouring fiber's frames.
// Stack tops are staggered by a few cache lines per stack ("colouring"): with page-aligned tops
// the hot frames of hundreds of fibers all map to the same few cache sets and evict each other.
bool stack_alloc(Stack& s, size_t size, unsigned index) {
    const size_t p = page_size();
    const size_t colour = (index * 5 % 64) * 64;
    void* m = mmap(nullptr, size + p, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return false;
    s.map = static_cast<unsigned char*>(m);
    s.map_size = size + p;
    (void)mprotect(s.map, p, PROT_NONE);  // best effort: out of mappings still gives a stack
    s.lo = s.map + p;
    s.size = size - colour;
    return true;
}

void stack_free(Stack& s) {
#if DARTS_EMU_ASAN
    // Frames that never returned leave stack redzones in the shadow, which outlives the mapping.
    if (s.map) ASAN_UNPOISON_MEMORY_REGION(s.map, s.map_size);
#endif
    if (s.map) munmap(s.map, s.map_size);
    s = Stack{};
}

// ---------------------------------------------------------------- launch and worker state

enum State : uint8_t { kNotStarted, kRunnable, kRunning, kWaitBar, kWaitWarp, kDone };

struct Fiber : ThreadRec {
    Ctx ctx;
    unsigned linear = 0;
    uint8_t state = kNotStarted;
    // The warp collective this thread is in (valid while state == kWaitWarp or completing).
    int wop = 0;
    int warg = 0;
    int wwidth = 32;
    unsigned wmask = 0;
    uint64_t wval = 0;
    uint64_t wout = 0;
    int pred = 0;  // __syncthreads_count argument
};

struct Warp {
    unsigned valid = 0;    // lanes that exist (the last warp may be partial)
    unsigned arrived = 0;  // lanes inside a collective
    unsigned exited = 0;
};

// The first guard-page fault of a launch, written by the SIGSEGV handler.
struct GuardFault {
    int access;     // 1: write, 0: read, -1: unknown
    bool before;    // in the page before the buffer (else after it)
    size_t bytes;   // the buffer's size
    size_t offset;  // bytes before the start, or the byte index after the end
    uintptr_t data;
    uint3 block, thread;
};

struct Launch {
    const char* name;
    darts_emu_tramp tramp;
    void** args;
    dim3 grid, block;
    unsigned nthreads;
    unsigned dyn_smem;
    bool reverse;
    uint64_t nblocks;
    uint64_t chunk = 1;  // blocks claimed at a time
    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex err_mutex;
    std::string err;
    int helper_slots = 0;    // guarded by the pool mutex
    int helpers_active = 0;  // guarded by the pool mutex
    // Written from the SIGSEGV handler, so lock-free; read once every worker is done.
    std::atomic<bool> faulted{false};      // `fault` is set
    std::atomic<bool> opened_guard{false};  // some guard page was opened for it
    GuardFault fault{};

    void fail(const std::string& msg) {
        std::lock_guard<std::mutex> g(err_mutex);
        if (!failed.load(std::memory_order_relaxed)) {
            err = msg;
            failed.store(true, std::memory_order_relaxed);
        }
    }
};

// Everything one OS thread needs to run blocks; reused across blocks and launches.
struct Worker {
    Ctx sched;  // the OS thread's own stack: starts a block, regains control when it ends
    Ctx boot;   // initial context of the runner being started
    Ctx dead;   // where a context that is never resumed saves itself
    std::vector<Stack> stacks;
    std::vector<unsigned> free_stacks;
    size_t stack_size = 0;
    unsigned runner_stack = 0;  // stack handed to the runner being started
    int finished_stack = -1;    // stack of a runner that just ran out of threads

    std::vector<Fiber> fibers;
    dim3 fiber_dims{0, 0, 0};  // block shape fibers[].threadIdx was computed for
    std::vector<Warp> warps;
    BlockRec blk{};
    unsigned char* smem = nullptr;
    size_t smem_cap = 0;

    const Launch* launch = nullptr;
    unsigned n = 0;           // threads per block
    unsigned next_start = 0;  // schedule position of the next thread to start; later ones have
                              // stale states from the previous block
    unsigned scan = 0;        // schedule position where the current pass continues
    unsigned n_ready = 0;     // not started or runnable
    unsigned n_done = 0, n_bar = 0, n_warp = 0;
    int bar_count = 0;
    bool in_block = false;
    bool failed = false;
    std::string err;

    void* altstack = nullptr;  // ours, if the thread had no alternate signal stack

    Worker() {
        // A guard-page fault happens on a 64 KiB fiber stack: its handler runs on this instead.
        stack_t cur{};
        if (sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
            void* m = mmap(nullptr, kAltStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            stack_t ss{};
            ss.ss_sp = m;
            ss.ss_size = kAltStack;
            if (m != MAP_FAILED && sigaltstack(&ss, nullptr) == 0) altstack = m;
            else if (m != MAP_FAILED) munmap(m, kAltStack);
        }
#if DARTS_EMU_ASAN
        pthread_attr_t a;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            void* lo;
            size_t sz;
            pthread_attr_getstack(&a, &lo, &sz);
            sched.lo = lo;
            sched.size = sz;
            pthread_attr_destroy(&a);
        }
#endif
    }
    ~Worker() {
        for (Stack& s : stacks) stack_free(s);
        std::free(smem);
        if (altstack) {
            stack_t off{};
            off.ss_flags = SS_DISABLE;
            (void)sigaltstack(&off, nullptr);
            munmap(altstack, kAltStack);
        }
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
};

__thread Worker* t_worker = nullptr;

struct WorkerOwner {
    ~WorkerOwner() {
        Worker* w = t_worker;
        t_worker = nullptr;  // the SIGSEGV handler must not see it half destroyed
        delete w;
    }
};

Worker& get_worker() {
    if (Worker* w = t_worker) return *w;
    thread_local WorkerOwner owner;  // frees the worker when the thread exits
    t_worker = new Worker;
    return *t_worker;
}

inline Fiber& cur_fiber() { return *static_cast<Fiber*>(tls_thread); }

std::string where(const Worker& w) {
    const uint3 b = w.blk.blockIdx;
    return format("kernel '%s' block (%u,%u,%u): ", w.launch->name, b.x, b.y, b.z);
}

std::string thread_name(const Fiber& f) {
    return format("thread (%u,%u,%u)", f.threadIdx.x, f.threadIdx.y, f.threadIdx.z);
}

// ---------------------------------------------------------------- device memory and guard pages
//
// Each buffer from darts_emu_alloc is one mapping: a PROT_NONE page, the data pages, a PROT_NONE
// page. A kernel that touches a guard page faults; the SIGSEGV handler records the fault in the
// running launch, opens the page (filled with 0xFF) so that the instruction re-executes, and the
// launch fails once the grid is done. The handler finds guard pages in a fixed-size hash table:
// no malloc, and a spinlock that is never held while buffer memory is touched, so taking it in
// the handler cannot deadlock.

constexpr unsigned char kPoisonByte = 0xFF;  // fresh buffers and opened guard pages: NaN as f32
constexpr unsigned char kSlackByte = 0xA5;   // the slack beside the data on its inexact side
constexpr size_t kSlackChecked = 256;        // slack bytes nearest the data checked per launch
constexpr unsigned kSlotBits = 17;
constexpr size_t kSlots = size_t{1} << kSlotBits;  // two per live buffer, kept at most half full

// One guard page of a live buffer; page 0 marks an empty slot.
struct GuardSlot {
    uintptr_t page;
    uintptr_t data;  // the buffer's first byte
    size_t bytes;
    const Launch* opener;  // the launch that opened this page after a fault, else null
};

GuardSlot g_slots[kSlots];  // open addressing with linear probing
size_t g_slots_used = 0;
std::atomic_flag g_slots_lock = ATOMIC_FLAG_INIT;
std::atomic<size_t> g_page{0};  // the page size, for the signal handler
struct sigaction g_prev_segv;   // chained to for every fault that is not ours

class SlotLock {
  public:
    SlotLock() {
        for (unsigned spins = 0; g_slots_lock.test_and_set(std::memory_order_acquire); ++spins)
            if (spins > 64) sched_yield();
    }
    ~SlotLock() { g_slots_lock.clear(std::memory_order_release); }
    SlotLock(const SlotLock&) = delete;
    SlotLock& operator=(const SlotLock&) = delete;
};

size_t slot_home(uintptr_t page) {  // Fibonacci hashing; pages are at least 4 KiB apart
    return static_cast<size_t>(((page >> 12) * 0x9E3779B97F4A7C15ull) >> (64 - kSlotBits));
}

// The slot holding `page`, or the empty one where it would go. The caller holds the lock.
size_t slot_find(uintptr_t page) {
    size_t i = slot_home(page);
    while (g_slots[i].page != 0 && g_slots[i].page != page) i = (i + 1) & (kSlots - 1);
    return i;
}

// Backward-shift deletion: later entries of the probe chain move up, so no tombstones.
void slot_erase(size_t i) {
    for (size_t j = i;;) {
        j = (j + 1) & (kSlots - 1);
        if (g_slots[j].page == 0) break;
        const size_t k = slot_home(g_slots[j].page);
        const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);  // home in (i, j]
        if (!stays) {
            g_slots[i] = g_slots[j];
            i = j;
        }
    }
    g_slots[i] = GuardSlot{};
    --g_slots_used;
}

size_t data_pages(size_t bytes) { return (bytes + page_size() - 1) / page_size(); }

// The leading guard page of a buffer: its data starts in the page after it (placement 0 puts
// the data at the end of its pages, but less than a page from their start).
uintptr_t leading_guard(const void* data) {
    return (reinterpret_cast<uintptr_t>(data) & ~(page_size() - 1)) - page_size();
}

// The registry entry of a live buffer, or false.
bool find_buffer(const void* data, GuardSlot& out) {
    SlotLock lock;
    const GuardSlot& s = g_slots[slot_find(leading_guard(data))];
    if (s.page == 0 || s.data != reinterpret_cast<uintptr_t>(data)) return false;
    out = s;
    return true;
}

// 1: the faulting access was a write, 0: a read, -1: unknown on this architecture.
int fault_access(const void* uctx) {
#if defined(__x86_64__) && defined(REG_ERR)
    return static_cast<const ucontext_t*>(uctx)->uc_mcontext.gregs[REG_ERR] & 2 ? 1 : 0;  // page-fault W bit
#else
    (void)uctx;
    return -1;
#endif
}

// A kernel touched a guard page: records the first such fault in its launch and opens the page
// so that the access re-executes. False when the fault is not ours or not from a kernel.
// Async-signal-safe: atomics, plain stores, mprotect and memset only.
bool on_guard_fault(const siginfo_t* info, const void* uctx) {
    Worker* w = t_worker;
    const ThreadRec* t = tls_thread;
    if (!w || !w->in_block || !w->launch || !t) return false;
    const size_t p = g_page.load(std::memory_order_relaxed);
    const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
    const uintptr_t page = addr & ~(p - 1);
    Launch& L = const_cast<Launch&>(*w->launch);  // created non-const by darts_emu_launch
    SlotLock lock;
    GuardSlot& s = g_slots[slot_find(page)];
    if (s.page != page) return false;
    if (!s.opener) {  // else another thread opened it while this one waited for the lock
        void* pg = reinterpret_cast<void*>(page);
        if (mprotect(pg, p, PROT_READ | PROT_WRITE) != 0) return false;
        std::memset(pg, kPoisonByte, p);
        s.opener = &L;
        L.opened_guard.store(true, std::memory_order_relaxed);
    }
    if (!L.faulted.exchange(true, std::memory_order_relaxed)) {
        GuardFault& f = L.fault;
        f.access = fault_access(uctx);
        f.before = page < s.data;
        f.bytes = s.bytes;
        f.data = s.data;
        f.offset = f.before ? s.data - addr : addr - (s.data + s.bytes);
        f.block = w->blk.blockIdx;
        f.thread = t->threadIdx;
    }
    L.failed.store(true, std::memory_order_relaxed);  // this block finishes; the rest is skipped
    return true;
}

void segv_handler(int sig, siginfo_t* info, void* uctx) {
    const int saved_errno = errno;
    const bool ours = on_guard_fault(info, uctx);
    errno = saved_errno;
    if (ours) return;
    const struct sigaction& prev = g_prev_segv;
    if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
        prev.sa_sigaction(sig, info, uctx);
    } else if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        prev.sa_handler(sig);
    } else {  // the default action: the access re-executes and ends the process as it would have
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, nullptr);
    }
}

// Once per process, chaining to whatever was installed before (Rust's std installs one to
// report stack overflows).
void install_segv_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        g_page.store(page_size());
        sigaction(SIGSEGV, nullptr, &g_prev_segv);
        struct sigaction sa {};
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
    });
}

// Closes the guard pages a launch opened, so that the next launch faults on them again.
void close_guards(const Launch& L) {
    if (!L.opened_guard.load(std::memory_order_relaxed)) return;
    SlotLock lock;
    for (GuardSlot& s : g_slots) {
        if (s.page != 0 && s.opener == &L) {
            (void)mprotect(reinterpret_cast<void*>(s.page), page_size(), PROT_NONE);
            s.opener = nullptr;
        }
    }
}

std::string fault_message(const Launch& L) {
    const GuardFault& f = L.fault;
    const char* verb = f.access == 1 ? "wrote" : f.access == 0 ? "read" : "accessed";
    const std::string what = f.before ? format("%s %zu bytes before the start", verb, f.offset)
                                      : format("%s past the end", verb);
    std::string msg = format("kernel '%s' block (%u,%u,%u): thread (%u,%u,%u) %s of a %zu-byte buffer at %#zx",
                             L.name, f.block.x, f.block.y, f.block.z, f.thread.x, f.thread.y, f.thread.z,
                             what.c_str(), f.bytes, static_cast<size_t>(f.data));
    if (!f.before) msg += format(" (byte %zu after the end)", f.offset);
    return msg;
}

// True when n bytes at p all hold kSlackByte.
bool slack_intact(const unsigned char* p, size_t n) {
    constexpr uint64_t word = 0x0101010101010101ull * kSlackByte;
    size_t i = 0;
    for (uint64_t v; i + 8 <= n; i += 8) {
        std::memcpy(&v, p + i, 8);
        if (v != word) return false;
    }
    for (; i < n; ++i)
        if (p[i] != kSlackByte) return false;
    return true;
}

// ---------------------------------------------------------------- scheduling

// Every switch lands here first: a runner that ran out of threads cannot free its own stack
// while still running on it, so whoever runs next does.
inline void after_switch(Worker& w) {
    if (w.finished_stack >= 0) {
        w.free_stacks.push_back(static_cast<unsigned>(w.finished_stack));
        w.finished_stack = -1;
    }
}

void runner_main();

// Sets up w.boot to start a runner on a free stack.
bool prepare_runner(Worker& w) {
    if (w.free_stacks.empty()) {
        Stack s;
        if (!stack_alloc(s, w.stack_size, static_cast<unsigned>(w.stacks.size()))) {
            w.failed = true;
            w.err = where(w) + format("cannot allocate a %zu-byte fiber stack (%zu in use)", w.stack_size,
                                      w.stacks.size());
            return false;
        }
        w.stacks.push_back(s);
        w.free_stacks.push_back(static_cast<unsigned>(w.stacks.size() - 1));
    }
    w.runner_stack = w.free_stacks.back();
    w.free_stacks.pop_back();
    const Stack& s = w.stacks[w.runner_stack];
    ctx_init(w.boot, s.lo, s.size, runner_main);
    return true;
}

// Nothing can run and not every thread exited: release a barrier or explain the deadlock.
bool stuck(Worker& w) {
    Fiber* fib = w.fibers.data();
    if (w.n_warp > 0) {
        unsigned i = 0;
        while (fib[i].state != kWaitWarp) ++i;
        const Fiber& f = fib[i];
        const unsigned warp = f.linear >> 5;
        const Warp& wp = w.warps[warp];
        const unsigned missing = f.wmask & ~wp.arrived;
        std::string why;
        unsigned exited = 0, at_bar = 0;
        for (unsigned m = missing; m; m &= m - 1) {
            const unsigned l = __builtin_ctz(m);
            (fib[warp * 32 + l].state == kDone ? exited : at_bar) |= 1u << l;
        }
        if (exited) why += format("lane(s) %s exited", lane_list(exited).c_str());
        if (at_bar) why += format("%slane(s) %s wait at __syncthreads()", why.empty() ? "" : "; ",
                                  lane_list(at_bar).c_str());
        if (why.empty()) why = "its lanes wait in collectives with different masks";
        w.err = where(w) + format("%s(mask 0x%08x) in warp %u cannot complete (lane(s) %s waiting): %s",
                                  op_name(f.wop), f.wmask, warp, lane_list(wp.arrived & f.wmask).c_str(),
                                  why.c_str());
        return false;
    }
    if (w.n_bar == w.n) {  // every thread at a barrier: release it
        int count = 0;
        for (unsigned i = 0; i < w.n; ++i) {
            count += fib[i].pred != 0;
            fib[i].state = kRunnable;
        }
        w.bar_count = count;
        w.n_bar = 0;
        w.n_ready = w.n;
        return true;
    }
    // Some threads wait at a barrier that exited threads will never reach.
    unsigned first_wait = 0, first_done = 0;
    while (fib[first_wait].state != kWaitBar) ++first_wait;
    while (fib[first_done].state != kDone) ++first_done;
    w.err = where(w) + format("__syncthreads() not reached by all threads of the block: %u thread(s) wait at a "
                              "barrier (first %s) but %u exited (first %s)",
                              w.n_bar, thread_name(fib[first_wait]).c_str(), w.n_done,
                              thread_name(fib[first_done]).c_str());
    return false;
}

// Continues the current pass and returns the context to run next: a runnable fiber, a new runner
// for the next unstarted thread, or w.sched when the block finished or failed.
Ctx* pick_next(Worker& w) {
    const unsigned n = w.n;
    const bool rev = w.launch->reverse;
    for (;;) {
        while (w.n_ready > 0) {
            if (w.scan >= n) w.scan = 0;  // next pass
            const unsigned pos = w.scan++;
            if (pos >= w.next_start) return prepare_runner(w) ? &w.boot : &w.sched;
            Fiber& f = w.fibers[rev ? n - 1 - pos : pos];
            if (f.state == kRunnable) {
                --w.n_ready;
                f.state = kRunning;
                tls_thread = &f;
                return &f.ctx;
            }
        }
        if (w.n_done == n) return &w.sched;
        if (!stuck(w)) {
            w.failed = true;
            return &w.sched;
        }
        w.scan = 0;  // barrier released: a new pass from the first thread
    }
}

// Suspends the running fiber (its state says what it waits for) and runs whatever is next.
void block_fiber(Worker& w, Fiber& f) {
    Ctx* next = pick_next(w);
    if (next == &f.ctx) return;  // picked itself: first in order after a barrier release
    ctx_switch(f.ctx, *next, false);
    after_switch(w);
}

// Abandons the block after an error (already in w.err): nothing resumes this fiber, and its
// stack is reclaimed when the next block starts. Frames on it are never unwound, so callers
// build the message in a statement of its own: no std::string temporary is live here.
[[noreturn]] void abandon(Worker& w, Fiber& f) {
    w.failed = true;
    ctx_switch(f.ctx, w.sched, true);
    std::abort();  // unreachable
}

// Entry of every runner stack: starts threads in schedule order until all have started.
void runner_main() {
    Worker& w = *t_worker;
#if DARTS_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    after_switch(w);
    const unsigned my_stack = w.runner_stack;
    const Launch& L = *w.launch;
    bool threw = false;
    while (w.next_start < w.n) {
        const unsigned pos = w.next_start++;
        Fiber& f = w.fibers[L.reverse ? w.n - 1 - pos : pos];
        --w.n_ready;
        f.state = kRunning;
#if DARTS_EMU_ASAN
        f.ctx.lo = w.stacks[my_stack].lo;
        f.ctx.size = w.stacks[my_stack].size;
#endif
        tls_thread = &f;
        try {
            L.tramp(L.args);
        } catch (const std::exception& e) {
            threw = true;
            w.err = where(w) + thread_name(f) + " threw a C++ exception: " + e.what();
        } catch (...) {
            threw = true;
            w.err = where(w) + thread_name(f) + " threw a C++ exception";
        }
        if (threw) abandon(w, f);  // outside the handler, so the exception is freed
        // f may have blocked and resumed meanwhile; it kept this stack.
        f.state = kDone;
        ++w.n_done;
        w.warps[f.linear >> 5].exited |= 1u << (f.linear & 31);
    }
    w.finished_stack = static_cast<int>(my_stack);  // freed by whoever runs next
    ctx_switch(w.dead, *pick_next(w), true);
    std::abort();  // never resumed
}

}  // namespace

int block_barrier(int pred) {
    Worker& w = *t_worker;
    Fiber& f = cur_fiber();
    f.pred = pred;
    f.state = kWaitBar;
    ++w.n_bar;
    block_fiber(w, f);
    return w.bar_count;  // stable until every thread has resumed and reached the next barrier
}

unsigned active_mask() {
    const Worker& w = *t_worker;
    const Warp& wp = w.warps[cur_fiber().linear >> 5];
    return wp.valid & ~wp.exited;
}

namespace {

// Runs when the last lane named in `mask` arrives: every lane's result is computed here, before
// any lane resumes, so a lane that hurries on to the next collective cannot disturb the inputs.
void complete_collective(Worker& w, Fiber& self, Warp& wp, unsigned mask) {
    Fiber* lanes = &w.fibers[self.linear & ~31u];
    const int op = self.wop;
    for (unsigned m = mask; m; m &= m - 1) {
        const Fiber& g = lanes[__builtin_ctz(m)];
        if (g.wop != op || g.wmask != mask) {
            w.err = where(w) + format("lanes of warp %u met at different warp collectives: lane %u in "
                                      "%s(mask 0x%08x), lane %u in %s(mask 0x%08x)",
                                      self.linear >> 5, self.linear & 31, op_name(op), mask, g.linear & 31,
                                      op_name(g.wop), g.wmask);
            abandon(w, self);
        }
    }
    unsigned bits = 0;  // ballot of the predicates
    for (unsigned m = mask; m; m &= m - 1) {
        const unsigned l = __builtin_ctz(m);
        if (lanes[l].wval) bits |= 1u << l;
    }
    for (unsigned m = mask; m; m &= m - 1) {
        const unsigned l = __builtin_ctz(m);
        Fiber& g = lanes[l];
        const unsigned width = static_cast<unsigned>(g.wwidth);
        const unsigned seg = l & ~(width - 1);
        uint64_t out = g.wval;
        int src = -1;  // lane read by a shuffle; -1 (outside the lane's range) returns our own value
        switch (op) {
            case kSync: out = 0; break;
            case kShflIdx: src = static_cast<int>(seg + (static_cast<unsigned>(g.warg) & (width - 1))); break;
            case kShflUp: {  // like PTX, only the low 5 bits of delta / laneMask count
                const unsigned d = static_cast<unsigned>(g.warg) & 31;
                if ((l & (width - 1)) >= d) src = static_cast<int>(l - d);
                break;
            }
            case kShflDown: {
                const unsigned d = static_cast<unsigned>(g.warg) & 31;
                if ((l & (width - 1)) + d < width) src = static_cast<int>(l + d);
                break;
            }
            case kShflXor: {
                // CUDA: a lane may read earlier width-groups but not later ones.
                const unsigned s = l ^ (static_cast<unsigned>(g.warg) & 31);
                if (s < seg + width) src = static_cast<int>(s);
                break;
            }
            case kBallot: out = bits; break;
            case kAny: out = bits != 0; break;
            case kAll: out = bits == mask; break;
            default: {  // __reduce_*_sync over 32-bit values
                uint32_t acc = static_cast<uint32_t>(lanes[__builtin_ctz(mask)].wval);
                for (unsigned r = mask & (mask - 1); r; r &= r - 1) {
                    const uint32_t v = static_cast<uint32_t>(lanes[__builtin_ctz(r)].wval);
                    switch (op) {
                        case kReduceAddU: acc += v; break;
                        case kReduceMinU: acc = std::min(acc, v); break;
                        case kReduceMaxU: acc = std::max(acc, v); break;
                        case kReduceMinI:
                            acc = static_cast<uint32_t>(std::min(static_cast<int32_t>(acc), static_cast<int32_t>(v)));
                            break;
                        case kReduceMaxI:
                            acc = static_cast<uint32_t>(std::max(static_cast<int32_t>(acc), static_cast<int32_t>(v)));
                            break;
                        case kReduceAnd: acc &= v; break;
                        case kReduceOr: acc |= v; break;
                        default: acc ^= v; break;
                    }
                }
                out = acc;
                break;
            }
        }
        if (src >= 0) {  // inside the lane's range: the source must have taken part
            if (!(mask >> src & 1)) {
                w.err = where(w) + format("%s(mask 0x%08x) in warp %u: lane %u reads lane %d, which is not in the "
                                          "mask", op_name(op), mask, self.linear >> 5, l, src);
                abandon(w, self);
            }
            out = lanes[src].wval;
        }
        g.wout = out;
    }
    for (unsigned m = mask & ~(1u << (self.linear & 31)); m; m &= m - 1) {
        lanes[__builtin_ctz(m)].state = kRunnable;
        ++w.n_ready;
        --w.n_warp;
    }
    wp.arrived &= ~mask;
}

}  // namespace

uint64_t warp_collective(int op, unsigned mask, uint64_t value, int arg, int width) {
    Worker& w = *t_worker;
    Fiber& f = cur_fiber();
    Warp& wp = w.warps[f.linear >> 5];
    const unsigned lane = f.linear & 31, bit = 1u << lane;
    if (const unsigned ghosts = mask & ~wp.valid) {  // e.g. a full mask in a partial last warp
        w.err = where(w) + format("%s by %s (warp %u lane %u) with mask 0x%08x, which names lane(s) %s that do not "
                                  "exist (the block's last warp has %d lanes)", op_name(op), thread_name(f).c_str(),
                                  f.linear >> 5, lane, mask, lane_list(ghosts).c_str(), __builtin_popcount(wp.valid));
        abandon(w, f);
    }
    if (!(mask & bit)) {
        w.err = where(w) + format("%s by %s (warp %u lane %u) with mask 0x%08x, which does not name the "
                                  "calling lane", op_name(op), thread_name(f).c_str(), f.linear >> 5, lane, mask);
        abandon(w, f);
    }
    if (width <= 0 || width > 32 || (width & (width - 1))) {
        w.err = where(w) + format("%s by %s with width %d (must be a power of two <= 32)", op_name(op),
                                  thread_name(f).c_str(), width);
        abandon(w, f);
    }
    f.wop = op;
    f.wmask = mask;
    f.warg = arg;
    f.wwidth = width;
    f.wval = value;
    if (const unsigned gone = mask & wp.exited) {
        w.err = where(w) + format("%s(mask 0x%08x) in warp %u cannot complete: lane(s) %s exited",
                                  op_name(op), mask, f.linear >> 5, lane_list(gone).c_str());
        abandon(w, f);
    }
    wp.arrived |= bit;
    if ((wp.arrived & mask) != mask) {
        f.state = kWaitWarp;
        ++w.n_warp;
        block_fiber(w, f);
        return f.wout;  // written by the lane that completed the collective
    }
    complete_collective(w, f, wp, mask);
    return f.wout;
}

namespace {

// ---------------------------------------------------------------- blocks

bool run_block(Worker& w, uint64_t id) {
    const Launch& L = *w.launch;
    w.blk.blockIdx = uint3{static_cast<unsigned>(id % L.grid.x), static_cast<unsigned>(id / L.grid.x % L.grid.y),
                           static_cast<unsigned>(id / (uint64_t{L.grid.x} * L.grid.y))};
    for (Warp& wp : w.warps) wp.arrived = wp.exited = 0;
    if (w.free_stacks.size() != w.stacks.size()) {  // a failed block abandoned its stacks
        w.free_stacks.clear();
        for (unsigned i = static_cast<unsigned>(w.stacks.size()); i-- > 0;) w.free_stacks.push_back(i);
    }
    w.finished_stack = -1;
    w.next_start = w.scan = 0;
    w.n_ready = w.n;
    w.n_done = w.n_bar = w.n_warp = 0;
    w.failed = false;
    w.in_block = true;
    Ctx* first = pick_next(w);
    if (first != &w.sched) {
        ctx_switch(w.sched, *first, false);
        after_switch(w);
    }
    w.in_block = false;
    tls_thread = nullptr;
    if (w.failed) return false;
    // The canary behind the dynamic shared memory must be intact.
    const unsigned char* c = w.blk.dyn_smem + L.dyn_smem;
    uint64_t diff = 0;
    for (size_t i = 0; i < kSmemCanary; i += 8) {
        uint64_t v;
        std::memcpy(&v, c + i, 8);
        diff |= v ^ (0x0101010101010101ull * kCanaryByte);
    }
    if (diff) {
        size_t i = 0;
        while (c[i] == kCanaryByte) ++i;
        w.err = where(w) + format("wrote past the end of its %u bytes of dynamic shared memory (byte %zu beyond it)",
                                  L.dyn_smem, i);
        return false;
    }
    return true;
}

// Sizes the worker for this launch's block shape.
bool prepare(Worker& w, const Launch& L) {
    w.launch = &L;
    const size_t ss = stack_size_setting();
    if (w.stack_size != ss) {
        for (Stack& s : w.stacks) stack_free(s);
        w.stacks.clear();
        w.stack_size = ss;
    }
    const unsigned n = L.nthreads;
    w.n = n;
    const dim3 b = L.block;
    if (w.fiber_dims.x != b.x || w.fiber_dims.y != b.y || w.fiber_dims.z != b.z) {
        if (w.fibers.size() < n) w.fibers.resize(n);  // no fiber is live between blocks
        unsigned i = 0;
        for (unsigned z = 0; z < b.z; ++z)
            for (unsigned y = 0; y < b.y; ++y)
                for (unsigned x = 0; x < b.x; ++x, ++i) {
                    w.fibers[i].linear = i;
                    w.fibers[i].threadIdx = uint3{x, y, z};
                }
        const unsigned nwarps = (n + 31) / 32;
        w.warps.assign(nwarps, Warp{});
        for (unsigned k = 0; k < nwarps; ++k) {
            const unsigned lanes = std::min(32u, n - k * 32);
            w.warps[k].valid = lanes == 32 ? ~0u : (1u << lanes) - 1;
        }
        w.fiber_dims = b;
    }
    const size_t need = L.dyn_smem + kSmemCanary;
    if (w.smem_cap < need) {
        std::free(w.smem);
        const size_t cap = (need + 4095) / 4096 * 4096;
        w.smem = static_cast<unsigned char*>(std::aligned_alloc(256, cap));
        w.smem_cap = w.smem ? cap : 0;
        if (!w.smem) {
            w.err = format("kernel '%s': cannot allocate %zu bytes of dynamic shared memory", L.name, need);
            return false;
        }
    }
    std::memset(w.smem + L.dyn_smem, kCanaryByte, kSmemCanary);
    w.blk.blockDim = L.block;
    w.blk.gridDim = L.grid;
    w.blk.dyn_smem = w.smem;
    tls_block = &w.blk;
    return true;
}

// Runs blocks of L until none is left or the launch failed. Called by the launching thread and
// by each pool thread that joins the launch.
void run_blocks(Launch& L) {
    Worker& w = get_worker();
    if (!prepare(w, L)) {
        L.fail(w.err);
        return;
    }
    // Blocks are claimed a few at a time: one shared counter per block would bounce its cache
    // line between workers for tiny blocks.
    for (;;) {
        const uint64_t k0 = L.next.fetch_add(L.chunk, std::memory_order_relaxed);
        if (k0 >= L.nblocks) break;
        const uint64_t k1 = std::min(L.nblocks, k0 + L.chunk);
        for (uint64_t k = k0; k < k1; ++k) {
            if (L.failed.load(std::memory_order_relaxed)) break;
            if (!run_block(w, L.reverse ? L.nblocks - 1 - k : k)) {
                L.fail(w.err);
                break;
            }
        }
        if (L.failed.load(std::memory_order_relaxed)) break;
    }
    tls_block = nullptr;
    w.launch = nullptr;
}

// ---------------------------------------------------------------- worker pool

// Persistent helper threads: a launch queues itself with a number of helper slots, runs blocks
// on the calling thread too, then dequeues itself and waits for the helpers that joined.
class Pool {
  public:
    ~Pool() { shutdown(); }

    void run(Launch& L, unsigned helpers) {
        {
            std::unique_lock<std::mutex> lk(m_);
            while (threads_.size() < helpers) {
                try {
                    threads_.emplace_back([this] { loop(); });
                } catch (const std::system_error&) {
                    break;  // fewer helpers, still correct
                }
            }
            helpers = std::min<unsigned>(helpers, static_cast<unsigned>(threads_.size()));
            L.helper_slots = static_cast<int>(helpers);
            L.helpers_active = 0;
            if (helpers > 0) queue_.push_back(&L);
        }
        if (helpers > 0) work_cv_.notify_all();
        run_blocks(L);
        std::unique_lock<std::mutex> lk(m_);
        auto it = std::find(queue_.begin(), queue_.end(), &L);
        if (it != queue_.end()) queue_.erase(it);
        done_cv_.wait(lk, [&] { return L.helpers_active == 0; });
    }

    void shutdown() {
        std::vector<std::thread> ts;
        {
            std::lock_guard<std::mutex> lk(m_);
            stop_ = true;
            ts.swap(threads_);
        }
        work_cv_.notify_all();
        for (std::thread& t : ts) t.join();
        std::lock_guard<std::mutex> lk(m_);
        stop_ = false;
    }

  private:
    void loop() {
        std::unique_lock<std::mutex> lk(m_);
        for (;;) {
            work_cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
            if (stop_) return;
            Launch* L = queue_.front();
            if (--L->helper_slots == 0) queue_.pop_front();
            ++L->helpers_active;
            lk.unlock();
            run_blocks(*L);
            lk.lock();
            if (--L->helpers_active == 0) done_cv_.notify_all();  // L may vanish once we unlock
        }
    }

    std::mutex m_;
    std::condition_variable work_cv_, done_cv_;
    std::deque<Launch*> queue_;
    std::vector<std::thread> threads_;
    bool stop_ = false;
};

Pool& pool() {
    static Pool p;  // joined at exit
    return p;
}

void write_err(char* err, size_t errlen, const std::string& msg) {
    if (err && errlen > 0) std::snprintf(err, errlen, "%s", msg.c_str());
}

}  // namespace
}  // namespace darts_emu

extern "C" int darts_emu_launch(const char* name, darts_emu_tramp tramp, unsigned gx, unsigned gy, unsigned gz,
                                unsigned bx, unsigned by, unsigned bz, unsigned dyn_smem_bytes, void** args,
                                int schedule, int num_workers, char* err, size_t errlen) {
    using namespace darts_emu;
    if (err && errlen > 0) err[0] = '\0';
    if (!name) name = "?";
    const uint64_t nthreads = uint64_t{bx} * by * bz;
    std::string bad;
    if (!tramp) bad = "null trampoline";
    else if (schedule != 0 && schedule != 1) bad = format("schedule %d (must be 0 or 1)", schedule);
    else if (gx == 0 || gy == 0 || gz == 0 || gx > 0x7fffffffu || gy > 65535 || gz > 65535)
        bad = format("invalid grid (%u,%u,%u)", gx, gy, gz);
    else if (nthreads == 0 || nthreads > kMaxBlockThreads || bx > 1024 || by > 1024 || bz > 64)
        bad = format("invalid block (%u,%u,%u): at most 1024 threads, z <= 64", bx, by, bz);
    else if (dyn_smem_bytes > kMaxDynSmem)
        bad = format("%u bytes of dynamic shared memory (at most %zu)", dyn_smem_bytes, kMaxDynSmem);
    else if (t_worker && t_worker->in_block)
        bad = "launch from inside a kernel (dynamic parallelism is not supported)";
    if (!bad.empty()) {
        write_err(err, errlen, format("kernel '%s': invalid launch: %s", name, bad.c_str()));
        return 1;
    }
    Launch L;
    try {
        L.name = name;
        L.tramp = tramp;
        L.args = args;
        L.grid = dim3(gx, gy, gz);
        L.block = dim3(bx, by, bz);
        L.nthreads = static_cast<unsigned>(nthreads);
        L.dyn_smem = dyn_smem_bytes;
        L.reverse = schedule == 1;
        L.nblocks = uint64_t{gx} * gy * gz;
        uint64_t workers = num_workers > 0 ? static_cast<unsigned>(num_workers)
                                           : std::max(1u, std::thread::hardware_concurrency());
        workers = std::min<uint64_t>({workers, L.nblocks, kMaxWorkers});
        L.chunk = std::max<uint64_t>(1, std::min<uint64_t>(16, L.nblocks / (workers * 8)));
        if (workers <= 1) run_blocks(L);  // no hand-off: single-block launches stay cheap
        else pool().run(L, static_cast<unsigned>(workers - 1));
    } catch (const std::exception& e) {
        close_guards(L);
        write_err(err, errlen, format("kernel '%s': emulator failure: %s", name, e.what()));
        return 3;
    }
    close_guards(L);
    if (L.faulted.load()) {  // the likely cause of anything else that went wrong
        write_err(err, errlen, fault_message(L));
        return 2;
    }
    if (L.failed.load()) {
        write_err(err, errlen, L.err);
        return 2;
    }
    return 0;
}

extern "C" void* darts_emu_alloc(size_t bytes, int placement, char* err, size_t errlen) {
    using namespace darts_emu;
    if (err && errlen > 0) err[0] = '\0';
    const size_t p = page_size();
    if (placement != 0 && placement != 1) {
        write_err(err, errlen, format("placement %d (must be 0 or 1)", placement));
        return nullptr;
    }
    if (bytes > (SIZE_MAX >> 1)) {
        write_err(err, errlen, format("cannot allocate %zu bytes", bytes));
        return nullptr;
    }
    install_segv_handler();
    const size_t pages = data_pages(bytes), len = (pages + 2) * p;
    void* m = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char* base = static_cast<unsigned char*>(m);
    if (m == MAP_FAILED || (pages > 0 && mprotect(base + p, pages * p, PROT_READ | PROT_WRITE) != 0)) {
        const int e = errno;
        if (m != MAP_FAILED) munmap(m, len);
        write_err(err, errlen, format("cannot map %zu bytes with guard pages: %s (vm.max_map_count limits the "
                                      "number of buffers)", bytes, std::strerror(e)));
        return nullptr;
    }
    unsigned char* first = base + p;
    unsigned char* trail = first + pages * p;
#if DARTS_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(first, pages * p);  // stale shadow of earlier mappings here
#endif
    unsigned char* data = placement == 0 ? trail - bytes : first;
    std::memset(first, kSlackByte, static_cast<size_t>(data - first));
    std::memset(data, kPoisonByte, bytes);
    std::memset(data + bytes, kSlackByte, static_cast<size_t>(trail - (data + bytes)));
    bool registered = false;
    {
        SlotLock lock;
        if (g_slots_used + 2 <= kSlots / 2) {
            for (unsigned char* guard : {base, trail}) {
                const uintptr_t pg = reinterpret_cast<uintptr_t>(guard);
                g_slots[slot_find(pg)] = GuardSlot{pg, reinterpret_cast<uintptr_t>(data), bytes, nullptr};
                ++g_slots_used;
            }
            registered = true;
        }
    }
    if (!registered) {
        munmap(m, len);
        write_err(err, errlen, format("more than %zu live buffers", kSlots / 4));
        return nullptr;
    }
    return data;
}

extern "C" void darts_emu_free(void* ptr) {
    using namespace darts_emu;
    if (!ptr) return;
    const uintptr_t lead = leading_guard(ptr);
    size_t pages;
    {
        SlotLock lock;
        const size_t i = slot_find(lead);
        if (g_slots[i].page == 0 || g_slots[i].data != reinterpret_cast<uintptr_t>(ptr)) return;  // not ours
        pages = data_pages(g_slots[i].bytes);
        slot_erase(i);
        slot_erase(slot_find(lead + (pages + 1) * page_size()));
    }
    munmap(reinterpret_cast<void*>(lead), (pages + 2) * page_size());
}

extern "C" int darts_emu_check_slack(const void* ptr, size_t* offset) {
    using namespace darts_emu;
    GuardSlot s;
    if (!find_buffer(ptr, s)) return -1;
    const unsigned char* first = reinterpret_cast<const unsigned char*>(s.page + page_size());
    const unsigned char* data = static_cast<const unsigned char*>(ptr);
    const unsigned char* end = data + s.bytes;
    const unsigned char* trail = first + data_pages(s.bytes) * page_size();
    const size_t before = std::min<size_t>(static_cast<size_t>(data - first), kSlackChecked);
    const size_t after = std::min<size_t>(static_cast<size_t>(trail - end), kSlackChecked);
    if (!slack_intact(data - before, before)) {
        size_t d = 1;
        while (data[-static_cast<ptrdiff_t>(d)] == kSlackByte) ++d;
        if (offset) *offset = d;
        return 1;
    }
    if (!slack_intact(end, after)) {
        size_t i = 0;
        while (end[i] == kSlackByte) ++i;
        if (offset) *offset = i;
        return 2;
    }
    return 0;
}

extern "C" void darts_emu_set_stack_size(size_t bytes) {
    using namespace darts_emu;
    const size_t p = page_size();
    darts_emu::g_stack_size.store(std::max(kMinStack, (bytes + p - 1) / p * p), std::memory_order_relaxed);
}

extern "C" void darts_emu_shutdown(void) { darts_emu::pool().shutdown(); }
