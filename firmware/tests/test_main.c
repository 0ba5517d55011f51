/* Unit tests of the portable core. Argument: the directory of the shared JSON vectors. */
#include "tests.h"

#include <stdio.h>

const char *g_vectors_dir = "../broker/protocol/testdata/vectors";

int main(int argc, char **argv)
{
    if (argc > 1) {
        g_vectors_dir = argv[1];
    }
    int failed = 0;
    failed += run_vector_tests();
    failed += run_agent_tests();
    printf("unit tests: %d failed\n", failed);
    return failed ? 1 : 0;
}
