#ifndef CCUSTOS_SYSTEM_H
#define CCUSTOS_SYSTEM_H

/// The type of the file system holding `path` (`f_type` of statfs(2): TMPFS_MAGIC, RAMFS_MAGIC, …).
/// Returns 0 and sets `*type`, or -1 with errno set. Glibc's Swift module does not import <sys/vfs.h>.
int custos_statfs_type(const char *path, long long *type);

#endif
