/* test_acl_rules.c - net/acl.c without a server: the command table's
 * categories, users' rules and passwords, ACL files, and protected mode's
 * decision.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <criterion/criterion.h>

/* Every command of the table belongs to at least one category, and only
 * to known ones; so +@all grants each, and -@cat can take any away. */
Test(acl, every_command_has_a_category)
{
	cr_assert_gt(rmq__cmd_count(), 20);
	cr_assert_leq(rmq__cmd_count(), RMQ_ACL_MAX_COMMANDS);
	for (size_t i = 0; i < rmq__cmd_count(); i++) {
		unsigned c = rmq__cmd_cats(i);
		cr_assert(c != 0, "command %s has no ACL category", rmq__cmd_name(i));
		cr_assert((c & ~RMQ_CAT_ALL) == 0, "command %s has an unknown category bit",
			  rmq__cmd_name(i));
	}
}

static int setuser(struct rmq_acl *acl, const char *name, const char *rules, char *err,
		   size_t errlen)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", rules);
	const char *v[64];
	size_t lens[64], n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save)) {
		v[n] = t;
		lens[n++] = strlen(t);
	}
	return rmq_acl_setuser(acl, name, strlen(name), v, lens, n, err, errlen);
}

Test(acl, passwords)
{
	char err[256];
	struct rmq_acl *acl = rmq_acl_new("s3cret", NULL, err, sizeof(err));
	cr_assert_not_null(acl, "%s", err);
	cr_assert(!rmq_acl_default_open(acl));
	cr_assert(rmq_acl_check_password(acl, "default", 7, "s3cret", 6));
	cr_assert(!rmq_acl_check_password(acl, "default", 7, "s3cre", 5));
	cr_assert(!rmq_acl_check_password(acl, "default", 7, "", 0));
	cr_assert(!rmq_acl_check_password(acl, "nobody", 6, "s3cret", 6));
	/* a new user is off: its password does not let anyone in */
	cr_assert_eq(setuser(acl, "alice", ">pw1 >pw2", err, sizeof(err)), 0, "%s", err);
	cr_assert(!rmq_acl_check_password(acl, "alice", 5, "pw1", 3));
	cr_assert_eq(setuser(acl, "alice", "on <pw1", err, sizeof(err)), 0, "%s", err);
	cr_assert(!rmq_acl_check_password(acl, "alice", 5, "pw1", 3));
	cr_assert(rmq_acl_check_password(acl, "alice", 5, "pw2", 3));
	/* #hash: SHA-256 of "pw3" */
	cr_assert_eq(setuser(acl, "bob",
			     "on #072aa9e9fb9d5162e465d3321530463caecd59b156676fe3071997cdc1017816",
			     err, sizeof(err)),
		     0, "%s", err);
	cr_assert(rmq_acl_check_password(acl, "bob", 3, "pw3", 3));
	cr_assert_neq(setuser(acl, "bob", "#12ab", err, sizeof(err)), 0);
	cr_assert(strstr(err, "64 hexadecimal"), "%s", err);
	cr_assert_eq(setuser(acl, "carol", "on nopass", err, sizeof(err)), 0, "%s", err);
	cr_assert(rmq_acl_check_password(acl, "carol", 5, "anything", 8));
	cr_assert_eq(setuser(acl, "carol", "resetpass", err, sizeof(err)), 0, "%s", err);
	cr_assert(!rmq_acl_check_password(acl, "carol", 5, "anything", 8));
	rmq_acl_free(acl);
}

Test(acl, rules_are_all_or_nothing)
{
	char err[256];
	struct rmq_acl *acl = rmq_acl_new(NULL, NULL, err, sizeof(err));
	cr_assert_not_null(acl);
	cr_assert(rmq_acl_default_open(acl));
	uint64_t e = rmq_acl_epoch(acl);
	cr_assert_neq(setuser(acl, "alice", "on >pw +@nosuch", err, sizeof(err)), 0);
	cr_assert(strstr(err, "unknown command category"), "%s", err);
	cr_assert_eq(rmq_acl_epoch(acl), e, "a refused SETUSER changes nothing");
	cr_assert(!rmq_acl_check_password(acl, "alice", 5, "pw", 2));
	cr_assert_neq(setuser(acl, "alice", "+nosuchcommand", err, sizeof(err)), 0);
	cr_assert_neq(setuser(acl, "alice", "allchannels &x", err, sizeof(err)), 0);
	cr_assert(strstr(err, "resetchannels"), "%s", err);
	cr_assert_neq(setuser(acl, "alice", "bogus", err, sizeof(err)), 0);
	cr_assert_neq(setuser(acl, "has space", "on", err, sizeof(err)), 0);
	cr_assert_eq(setuser(acl, "alice", "on >pw &a.* +@publish -mpublish", err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_gt(rmq_acl_epoch(acl), e);
	/* the default user losing nopass ends protected mode's question */
	cr_assert_eq(setuser(acl, "default", ">x", err, sizeof(err)), 0, "%s", err);
	cr_assert(!rmq_acl_default_open(acl));
	rmq_acl_free(acl);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(acl, acl_file)
{
	char path[] = "/tmp/ringmq-acl-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	char err[512];
	write_file(path, "# users\n\nuser alice on >pw &news.* +@publish +@connection\n"
			 "user bob off\n");
	struct rmq_acl *acl = rmq_acl_new(NULL, path, err, sizeof(err));
	cr_assert_not_null(acl, "%s", err);
	cr_assert(rmq_acl_check_password(acl, "alice", 5, "pw", 2));
	/* no default in the file: default is off, not open */
	cr_assert(!rmq_acl_default_open(acl));
	cr_assert(!rmq_acl_check_password(acl, "default", 7, "", 0));
	rmq_acl_free(acl);

	write_file(path, "user alice on >pw\nuser bob on +@nosuch\n");
	cr_assert_null(rmq_acl_new(NULL, path, err, sizeof(err)));
	cr_assert(strstr(err, ":2:") && strstr(err, "unknown command category"), "%s", err);
	write_file(path, "usr alice on\n");
	cr_assert_null(rmq_acl_new(NULL, path, err, sizeof(err)));
	cr_assert(strstr(err, ":1:"), "%s", err);
	write_file(path, "user a on\nuser a off\n");
	cr_assert_null(rmq_acl_new(NULL, path, err, sizeof(err)));
	cr_assert(strstr(err, "twice"), "%s", err);
	cr_assert_null(rmq_acl_new("pw", path, err, sizeof(err)));
	cr_assert(strstr(err, "do not go together"), "%s", err);
	unlink(path);
	cr_assert_null(rmq_acl_new(NULL, path, err, sizeof(err)));
	cr_assert(strstr(err, "cannot open"), "%s", err);
}

static struct sockaddr_in v4(const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(1234) };
	cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return a;
}

static bool refuses(bool on, const char *bind, bool file, bool open, const char *peer)
{
	if (strchr(peer, ':')) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
		cr_assert_eq(inet_pton(AF_INET6, peer, &a.sin6_addr), 1);
		return rmq_acl_protected_refuses(on, bind, file, open, (struct sockaddr *)&a,
						 sizeof(a));
	}
	struct sockaddr_in a = v4(peer);
	return rmq_acl_protected_refuses(on, bind, file, open, (struct sockaddr *)&a, sizeof(a));
}

Test(acl, protected_mode_decision)
{
	/* the one refusing case: open default, no file, non-loopback bind and peer */
	cr_assert(refuses(true, "0.0.0.0", false, true, "192.0.2.7"));
	cr_assert(refuses(true, "::", false, true, "2001:db8::1"));
	cr_assert(refuses(true, "10.0.0.1", false, true, "10.0.0.2"));
	/* loopback peers are always served */
	cr_assert(!refuses(true, "0.0.0.0", false, true, "127.0.0.1"));
	cr_assert(!refuses(true, "0.0.0.0", false, true, "127.5.6.7"));
	cr_assert(!refuses(true, "::", false, true, "::1"));
	cr_assert(!refuses(true, "::", false, true, "::ffff:127.0.0.1"));
	cr_assert(refuses(true, "::", false, true, "::ffff:192.0.2.7"));
	/* a loopback bind, a password, an ACL file or --protected-mode no */
	cr_assert(!refuses(true, "127.0.0.1", false, true, "192.0.2.7"));
	cr_assert(!refuses(true, "0.0.0.0", false, false, "192.0.2.7"));
	cr_assert(!refuses(true, "0.0.0.0", true, true, "192.0.2.7"));
	cr_assert(!refuses(false, "0.0.0.0", false, true, "192.0.2.7"));
}
