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

CURLcode devenv_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
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
