#include "CShims.h"

CURLcode devenv_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode devenv_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode devenv_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode devenv_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode devenv_curl_setopt_data_callback(CURL *handle, CURLoption option, devenv_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

CURLcode devenv_curl_setopt_progress_callback(CURL *handle, devenv_curl_progress_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

CURLcode devenv_curl_setopt_debug_callback(CURL *handle, devenv_curl_debug_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_DEBUGFUNCTION, callback);
}

CURLcode devenv_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

const char *devenv_curl_option_name(CURLoption option) {
    const struct curl_easyoption *found = curl_easy_option_by_id(option);
    return found != NULL && found->name != NULL ? found->name : "(unknown option)";
}

void devenv_ssh_init_server_callbacks(struct ssh_server_callbacks_struct *callbacks) {
    ssh_callbacks_init(callbacks);
}

void devenv_ssh_init_channel_callbacks(struct ssh_channel_callbacks_struct *callbacks) {
    ssh_callbacks_init(callbacks);
}

void devenv_ssh_init_session_callbacks(struct ssh_callbacks_struct *callbacks) {
    ssh_callbacks_init(callbacks);
}

/*
 * libssh keeps the peer's maximum packet size private, and ssh_channel_write loops forever
 * on a peer that declared 10 (it packs zero-byte packets), so the bridge must check it
 * before writing. The leading members of struct ssh_channel_struct are the same in every
 * 0.10.x and 0.11.x release; this mirrors only that prefix, and the runtime library
 * version is checked before it is used.
 */
struct devenv_ssh_channel_prefix {
    ssh_session session;
    uint32_t local_channel;
    uint32_t local_window;
    int local_eof;
    uint32_t local_maxpacket;
    uint32_t remote_channel;
    uint32_t remote_window;
    int remote_eof;
    uint32_t remote_maxpacket;
    int state;          /* enum ssh_channel_state_e */
    int delayed_close;
    int flags;
};

/* SSH_CHANNEL_FLAG_CLOSED_REMOTE in 0.10 and 0.11 (include/libssh/channels.h). */
#define DEVENV_SSH_CHANNEL_FLAG_CLOSED_REMOTE 0x0001

#if LIBSSH_VERSION_INT < SSH_VERSION_INT(0, 10, 0) || LIBSSH_VERSION_INT >= SSH_VERSION_INT(0, 12, 0)
#error "devenv_ssh_channel_peer_state knows the channel layout of libssh 0.10 and 0.11 only"
#endif

static int devenv_known_channel_layout = -1;

int devenv_ssh_channel_peer_state(ssh_channel channel, struct devenv_channel_peer_state *state) {
    if (devenv_known_channel_layout < 0) {
        /* Benign race: every thread computes the same answer. */
        devenv_known_channel_layout =
            ssh_version(SSH_VERSION_INT(0, 10, 0)) != NULL && ssh_version(SSH_VERSION_INT(0, 12, 0)) == NULL;
    }
    if (channel == NULL || state == NULL || !devenv_known_channel_layout) {
        return -1;
    }
    const struct devenv_ssh_channel_prefix *prefix = (const struct devenv_ssh_channel_prefix *)channel;
    state->max_packet = prefix->remote_maxpacket;
    state->sent_eof = prefix->remote_eof;
    state->sent_close = (prefix->flags & DEVENV_SSH_CHANNEL_FLAG_CLOSED_REMOTE) != 0;
    state->local_window = prefix->local_window;
    return 0;
}
