#ifndef ESPADMIN_TESTS_H
#define ESPADMIN_TESTS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

extern const char *g_vectors_dir;

int run_vector_tests(void);
int run_agent_tests(void);

#endif
