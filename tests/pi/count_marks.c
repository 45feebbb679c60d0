/*
 * A qemu-user TCG plugin that reports the guest instruction count at marks the program sets, for
 * tests/bench/pi_ops.py: many measurements in one emulated process (one interpreter per truncated model),
 * where tests/pi/count_instructions.c gives one total per process.
 *
 * A mark is a system call with a number no kernel has (MARK_SYSCALL; the guest gets ENOSYS, nothing else
 * happens) and the mark's tag as its first argument: `ctypes.CDLL(None).syscall(0x4d4f, tag)` in Python.
 * At each one the plugin prints "mark <tag> <instructions so far>" to stderr (QEMU_LOG=plugin). Built with
 * `gcc -shared -fPIC`; the few entry points of QEMU's plugin API (version 1, QEMU 7.2) are declared below,
 * as Debian ships no qemu-plugin.h.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                                              uint64_t a6, uint64_t a7, uint64_t a8);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_outs(const char *string);

#define EXPORTED __attribute__((visibility("default")))
#define MARK_SYSCALL 0x4d4f

EXPORTED int qemu_plugin_version = 1;

/* One counter for the whole process: the measured code runs on one thread between two marks. */
static uint64_t executed;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    char line[80];
    (void)id; (void)vcpu_index; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
    if (num != MARK_SYSCALL)
        return;
    snprintf(line, sizeof line, "mark %" PRIu64 " %" PRIu64 "\n", a1, executed);
    qemu_plugin_outs(line);
}

EXPORTED int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    return 0;
}
