/* procstat.h - what Linux's /proc says about a process: the CPU time it
 * has used and its resident set size. For the tools that watch a server
 * they started (ringmq-bench, the soak test), written once.
 *
 * The readers open, read and close the file on every call and keep no
 * state; any thread may call them. The parsers are pure functions over
 * the text of the file, so they can be tested on any input.
 */
#ifndef RMQ_PROCSTAT_H
#define RMQ_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/* Parses the text of /proc/PID/stat: utime and stime, its 14th and 15th
 * fields, in clock ticks. The second field, "(comm)", may hold blanks and
 * parentheses; the fields are counted after its last ')'. Returns 0 with
 * *utime and *stime set, or -1 when text is not such a line (both left
 * alone). text is NUL-terminated. */
int rmq_procstat_parse_cpu(const char *text, uint64_t *utime, uint64_t *stime);

/* Parses the text of /proc/PID/status: the number of the line "field:"
 * (for example "VmRSS", whose value is in kB). Returns it, or -1 when the
 * line is missing or holds no number. text is NUL-terminated. */
int64_t rmq_procstatus_parse_field(const char *text, const char *field);

/* User + system CPU time process pid has used so far, in seconds; -1 when
 * unknown (no such process, no /proc). */
double rmq_proc_cpu_seconds(pid_t pid);

/* Resident set size of process pid in KiB (VmRSS); -1 when unknown. */
int64_t rmq_proc_rss_kib(pid_t pid);

#endif
