/*
 * CLua: Lua 5.4 as Swift sees it.
 *
 * Swift must never be unwound by longjmp. Every Lua API that raises (lua_error, luaL_error,
 * luaL_check*, lua_call, lua_yield) is called only from the C functions below, after the
 * Swift frame that asked for it has returned. Lua macros are re-exported as functions.
 */
#ifndef KSR_CLUA_SHIM_H
#define KSR_CLUA_SHIM_H

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

/* ---- macros as functions ---- */
static const int KSR_LUA_REGISTRYINDEX = LUA_REGISTRYINDEX;
static const int KSR_LUA_RIDX_GLOBALS = LUA_RIDX_GLOBALS;
static const int KSR_LUA_MULTRET = LUA_MULTRET;

static inline void ksr_lua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline void ksr_lua_newtable(lua_State *L) { lua_newtable(L); }
static inline int ksr_lua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline const char *ksr_lua_tostring(lua_State *L, int i) { return lua_tostring(L, i); }
static inline int ksr_lua_isnoneornil(lua_State *L, int i) { return lua_isnoneornil(L, i); }
static inline void ksr_lua_pushglobaltable(lua_State *L) { lua_pushglobaltable(L); }
static inline void *ksr_lua_getextraspace(lua_State *L) { return lua_getextraspace(L); }
static inline int ksr_lua_pcall(lua_State *L, int nargs, int nresults, int msgh) {
    return lua_pcall(L, nargs, nresults, msgh);
}
static inline int ksr_lua_resetthread(lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
    return lua_closethread(L, NULL);
#else
    return lua_resetthread(L);
#endif
}

static inline size_t ksr_lua_memory(lua_State *L) {
    return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

/* ---- state creation: an allocator that aborts instead of raising, a panic that aborts ---- */
static inline void *ksr_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud; (void)osize;
    if (nsize == 0) { free(ptr); return NULL; }
    void *p = realloc(ptr, nsize);
    if (p == NULL) {
        fprintf(stderr, "ksr: out of memory in Lua allocator (%zu bytes), aborting\n", nsize);
        abort();
    }
    return p;
}

static inline int ksr_lua_panic(lua_State *L) {
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(non-string error)";
    fprintf(stderr, "ksr: unprotected Lua error, aborting: %s\n", msg);
    fflush(stderr);
    abort();
    return 0;
}

static inline lua_State *ksr_lua_newstate(void) {
    lua_State *L = lua_newstate(ksr_lua_alloc, NULL);
    if (L != NULL) lua_atpanic(L, ksr_lua_panic);
    return L;
}

/* Opens the standard libraries under protection (luaL_openlibs may raise on memory errors). */
static inline int ksr_lua_openlibs_cb(lua_State *L) { luaL_openlibs(L); return 0; }
static inline int ksr_lua_openlibs(lua_State *L) {
    lua_pushcfunction(L, ksr_lua_openlibs_cb);
    return lua_pcall(L, 0, 0, 0);
}

/* ---- the trampoline for Swift functions exported to Lua ----
 * Upvalue 1: a full userdata holding the Swift dispatcher (a C function pointer) and the
 * export's integer id, so that a call reads one upvalue (one Lua API call), not two.
 * The dispatcher returns the number of results, or KSR_RAISE with the error value on top of
 * the stack; the trampoline raises it once the Swift frame is gone.
 */
#define KSR_RAISE (-1)
typedef int (*ksr_dispatch_fn)(lua_State *L, int id);
typedef struct ksr_export_slot {
    ksr_dispatch_fn fn;
    int id;
} ksr_export_slot;

static inline int ksr_trampoline(lua_State *L) {
    const ksr_export_slot *slot = (const ksr_export_slot *)lua_touserdata(L, lua_upvalueindex(1));
    int n = slot->fn(L, slot->id);
    if (n == KSR_RAISE) return lua_error(L);
    return n;
}

/* Pushes the closure. Allocates (the userdata, the closure): with ksr_lua_alloc a failure
 * aborts instead of raising, so this never longjmps. */
static inline void ksr_push_trampoline(lua_State *L, void *dispatcher, int id) {
    ksr_export_slot *slot = (ksr_export_slot *)lua_newuserdatauv(L, sizeof(ksr_export_slot), 0);
    slot->fn = (ksr_dispatch_fn)dispatcher;
    slot->id = id;
    lua_pushcclosure(L, ksr_trampoline, 1);
}

/* ---- loading and protected helpers ---- */

/* Loads a file as a chunk (does not run it). Returns a LUA_* status; on error the message is on top. */
static inline int ksr_lua_loadfile(lua_State *L, const char *path) {
    return luaL_loadfilex(L, path, "t");
}
static inline int ksr_lua_loadbuffer(lua_State *L, const char *buf, size_t len, const char *name) {
    return luaL_loadbufferx(L, buf, len, name, "t");
}

/* Message handler that appends a traceback (used with lua_pcall). */
static inline int ksr_lua_traceback_handler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            msg = lua_tostring(L, -1);
        } else {
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}
static inline void ksr_lua_push_traceback_handler(lua_State *L) {
    lua_pushcfunction(L, ksr_lua_traceback_handler);
}

/* Pushes the traceback of coroutine `co` (after a failed resume) onto L, prefixed by msg. */
static inline void ksr_lua_traceback(lua_State *L, lua_State *co, const char *msg, int level) {
    luaL_traceback(L, co, msg, level);
}

/* Copies the short source name of the frame into buf; returns the current line or -1. */
static inline int ksr_lua_where_buf(lua_State *L, int level, char *buf, size_t buflen) {
    lua_Debug ar;
    if (buflen > 0) buf[0] = 0;
    if (!lua_getstack(L, level, &ar)) return -1;
    if (!lua_getinfo(L, "Sl", &ar)) return -1;
    if (buflen > 0) {
        const char *src = (ar.source && ar.source[0] == '@') ? ar.source + 1 : ar.short_src;
        strncpy(buf, src, buflen - 1);
        buf[buflen - 1] = 0;
    }
    return ar.currentline;
}

/* ---- not Lua: a variadic system call Swift cannot make itself ---- */

/* Sets the calling thread's timer slack (Linux; 50 us by default), so timed waits of timer
 * workers wake close to their deadline. Returns 0 on success, -1 elsewhere. */
static inline int ksr_set_timer_slack_ns(unsigned long ns) {
#if defined(__linux__)
    return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0);
#else
    (void)ns;
    return -1;
#endif
}

#endif
