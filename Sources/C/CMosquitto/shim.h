#ifndef SWIFT_KUBEEDGE_CMOSQUITTO_SHIM_H
#define SWIFT_KUBEEDGE_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#endif
