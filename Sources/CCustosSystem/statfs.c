#include "CCustosSystem.h"

#include <sys/vfs.h>

int custos_statfs_type(const char *path, long long *type) {
    struct statfs buffer;
    if (statfs(path, &buffer) != 0) {
        return -1;
    }
    *type = (long long)buffer.f_type;
    return 0;
}
