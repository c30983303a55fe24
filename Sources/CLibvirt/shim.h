#ifndef CUSTOS_CLIBVIRT_SHIM_H
#define CUSTOS_CLIBVIRT_SHIM_H
// libvirt's public API; CustosVirt is the only Swift code that imports it.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#endif
