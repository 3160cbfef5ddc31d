/* config.h - the server's settings by name: one table (config.c) that the
 * command line (cli/server_main.c), the config file and the CONFIG command
 * share, so a setting has one name, one parser and one printed form
 * everywhere.
 *
 * Names are the command-line flags without "--" ("max-payload"). Values
 * are text as on the command line ("64M", "0.5", "yes").
 *
 * Memory: string settings (bind, dir, log-file, ...) set through this
 * module point into a copy it owns for the life of the process; nothing is
 * for the caller to free. Threads: rmq_config_set/get/load_file touch only
 * the cfg they are given (the caller serialises; the server holds its
 * config lock).
 */
#ifndef RMQ_CONFIG_H
#define RMQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

/* The setting's flags (rmq_config_lookup). */
#define RMQ_CONF_BOOL 1u    /* a switch: "--repair" alone means yes */
#define RMQ_CONF_RUNTIME 2u /* CONFIG SET may change it while running */
/* A password: never logged, and a file that holds it is written readable
 * by its owner only (CONFIG REWRITE). */
#define RMQ_CONF_SECRET 4u

/* Whether name is a setting; *flags gets its RMQ_CONF_* flags. */
RMQ_API bool rmq_config_lookup(const char *name, unsigned *flags);

/* Sets setting name from value in cfg. Returns 0, or -1 with what was
 * expected in why (e.g. "expected 1..64") or -2 for an unknown name. */
RMQ_API int rmq_config_set(struct rmq_server_config *cfg, const char *name, const char *value,
			   char *why, size_t whylen);

/* Writes setting name's value in cfg, in the form rmq_config_set takes,
 * to out (NUL-terminated). Returns false for an unknown name. */
RMQ_API bool rmq_config_get(const struct rmq_server_config *cfg, const char *name, char *out,
			    size_t outlen);

/* The name of setting i (0, 1, ...), NULL past the last. */
RMQ_API const char *rmq_config_name(size_t i);

/* Reads a config file into cfg: one "name value" per line, '#' starts a
 * comment line, blank lines are skipped, a value may be quoted ("..." with
 * \" \\ \n \t escapes, or '...' taken as is). Returns 0, or -1 with err
 * set to "PATH:LINE: what is wrong" (or "PATH: why" when it cannot be
 * read). cfg->config_file is set to path. */
RMQ_API int rmq_config_load_file(struct rmq_server_config *cfg, const char *path, char *err,
				 size_t errlen);

/* CONFIG REWRITE: rewrites cfg->config_file so it holds cfg's values. Lines
 * of settings are replaced in place (a setting given twice keeps its first
 * line, the others are dropped), comments, blank lines and their order are
 * kept, and settings that differ from their default and are not in the
 * file yet are appended after a marker comment. Written to a temporary file
 * beside it, synced and renamed over it. Returns 0 or -1 with err set. */
RMQ_API int rmq_config_rewrite(const struct rmq_server_config *cfg, char *err, size_t errlen);

/* A value that a config file line would need quoted, quoted into out. */
void rmq__config_quote(const char *v, char *out, size_t outlen);

#endif
