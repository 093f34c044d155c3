#ifndef DEVENV_CSHIMS_H
#define DEVENV_CSHIMS_H

// Typed, non-variadic wrappers for C APIs that Swift cannot import directly:
// curl_easy_setopt/curl_easy_getinfo are variadic, ssh_callbacks_init is a macro.

#include <curl/curl.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

typedef size_t (*devenv_curl_data_callback)(char *buffer, size_t size, size_t count, void *context);
typedef int (*devenv_curl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow,
                                             curl_off_t ultotal, curl_off_t ulnow);

CURLcode devenv_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode devenv_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);
CURLcode devenv_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode devenv_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode devenv_curl_setopt_data_callback(CURL *handle, CURLoption option, devenv_curl_data_callback callback);
CURLcode devenv_curl_setopt_progress_callback(CURL *handle, devenv_curl_progress_callback callback);
typedef int (*devenv_curl_debug_callback)(CURL *handle, curl_infotype type, char *data, size_t size, void *context);
CURLcode devenv_curl_setopt_debug_callback(CURL *handle, devenv_curl_debug_callback callback);
CURLcode devenv_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
/// libcurl's name of `option` without the CURLOPT_ prefix (e.g. "SSLCERT"), for error
/// messages; static storage, never NULL.
const char *devenv_curl_option_name(CURLoption option);

void devenv_ssh_init_server_callbacks(struct ssh_server_callbacks_struct *callbacks);
void devenv_ssh_init_channel_callbacks(struct ssh_channel_callbacks_struct *callbacks);
void devenv_ssh_init_session_callbacks(struct ssh_callbacks_struct *callbacks);

/// What the peer declared for a channel, which libssh 0.10 keeps but does not export.
struct devenv_channel_peer_state {
    /// The largest data packet the peer accepts (its maximum packet size).
    uint32_t max_packet;
    /// Non-zero once the peer sent EOF, even while its data is still buffered.
    int sent_eof;
    /// Non-zero once the peer sent close, even while its data is still buffered.
    int sent_close;
    /// The window libssh has left for the peer to send into (0 after an overrun).
    uint32_t local_window;
};

/// Reads the peer's declared maximum packet size, EOF, close and remaining window of `channel`.
/// Returns 0, or -1 when the running libssh is not one whose layout this shim knows
/// (0.10.x and 0.11.x), in which case `state` is left untouched.
int devenv_ssh_channel_peer_state(ssh_channel channel, struct devenv_channel_peer_state *state);

#endif
