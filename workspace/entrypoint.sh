#!/bin/bash
# Entrypoint of the devenv workspace image.
#
# The gateway injects these root-owned files before the container's first
# start (Docker archive API), and mounts the user's data volume at /home/USER:
#   /etc/devenv/user                  user name
#   /etc/devenv/uid                   numeric uid (also used as gid), >= 1000
#   /etc/devenv/authorized_keys       the gateway's public key (0644)
#   /etc/devenv/ssh_host_ed25519_key  this workspace's sshd host key (0600)
#
# It runs under --cap-drop ALL plus SETUID, SETGID, SYS_CHROOT, CHOWN, KILL,
# AUDIT_WRITE and no-new-privileges: root has no DAC_OVERRIDE/FOWNER, so it can
# only read, write and chmod files it owns. Every step below first makes root
# the owner (CHOWN), then changes modes, then reads or writes, and hands files
# to the user last.
#
# Idempotent: a restarted container (account already present, home already
# filled) goes straight through to sshd.
set -euo pipefail

readonly DEVENV_DIR=/etc/devenv
readonly SKEL=/etc/skel

die() {
    printf 'devenv-entrypoint: error: %s\n' "$*" >&2
    exit 1
}
warn() {
    printf 'devenv-entrypoint: warning: %s\n' "$*" >&2
}

# --- /etc/devenv: take ownership first, then fix modes, then read ----------

[[ -d $DEVENV_DIR && ! -L $DEVENV_DIR ]] \
    || die "$DEVENV_DIR is missing; the gateway must inject the workspace files before the first start"
chown root:root "$DEVENV_DIR"
chmod 0755 "$DEVENV_DIR"

# name -> mode
declare -A modes=(
    [user]=0644
    [uid]=0644
    [authorized_keys]=0644
    [ssh_host_ed25519_key]=0600
)
for name in user uid authorized_keys ssh_host_ed25519_key; do
    f=$DEVENV_DIR/$name
    [[ ! -L $f ]] || die "$f must be a regular file, not a symbolic link"
    [[ -e $f ]] || die "$f is missing; the gateway must inject it before the first start"
    [[ -f $f ]] || die "$f must be a regular file"
    # sshd refuses a host key readable by others and reads authorized_keys
    # as the user, so both ownership and modes matter.
    chown root:root "$f"
    chmod "${modes[$name]}" "$f"
    [[ -s $f ]] || die "$f is empty"
done

user=$(<"$DEVENV_DIR/user")
uid=$(<"$DEVENV_DIR/uid")
[[ $user =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] \
    || die "invalid user name in $DEVENV_DIR/user (must match ^[a-z_][a-z0-9_-]{0,31}\$)"
[[ $uid =~ ^[1-9][0-9]{0,9}$ ]] && (( 10#$uid >= 1000 && 10#$uid <= 4294967294 )) \
    || die "invalid uid in $DEVENV_DIR/uid (must be a decimal number >= 1000)"
uid=$((10#$uid))
gid=$uid
home=/home/$user

ssh-keygen -l -f "$DEVENV_DIR/authorized_keys" >/dev/null 2>&1 \
    || die "$DEVENV_DIR/authorized_keys holds no valid public key"

# --- group and account (idempotent) ------------------------------------------

if grent=$(getent group "$user"); then
    IFS=: read -r _ _ existing_gid _ <<<"$grent"
    [[ $existing_gid == "$gid" ]] \
        || die "group $user already exists with gid $existing_gid, expected $gid"
elif grent=$(getent group "$gid"); then
    die "gid $gid is already used by group ${grent%%:*}"
else
    groupadd --gid "$gid" "$user"
fi

if pwent=$(getent passwd "$user"); then
    IFS=: read -r _ _ existing_uid existing_gid _ <<<"$pwent"
    [[ $existing_uid == "$uid" && $existing_gid == "$gid" ]] \
        || die "account $user already exists with uid:gid $existing_uid:$existing_gid, expected $uid:$gid"
    # A restarted container keeps its account; make sure it is still usable
    # (sshd with UsePAM no refuses a locked "!" password field).
    IFS=: read -r _ pwfield _ <<<"$(getent shadow "$user" || true)"
    if [[ ${pwfield:-} != '*' ]]; then
        usermod --password '*' "$user"
    fi
elif pwent=$(getent passwd "$uid"); then
    die "uid $uid is already used by account ${pwent%%:*}"
else
    # -M: the home directory is the data volume, never created here.
    # -l: no lastlog/faillog entries (sparse-file blowup with large uids).
    useradd --uid "$uid" --gid "$gid" --home-dir "$home" --no-create-home \
        --shell /bin/bash --password '*' --no-log-init "$user"
fi

# --- home directory (the data volume) ----------------------------------------

[[ -d $home && ! -L $home ]] \
    || die "$home does not exist; mount the user's data volume there"
mountpoint -q "$home" \
    || warn "$home is not a mount point: the home directory will not persist"

# A new volume's root is root-owned and empty: fill it from the skeleton while
# root still owns it, then hand everything to the user. Only a root-owned home
# is looked into (root cannot read a user's 0700 home without DAC_OVERRIDE,
# and must never mistake it for an empty one); once the user owns it, it is
# never filled again, so the user's own files always win.
if [[ $(stat -c %u "$home") == 0 ]]; then
    listing=$(find "$home" -mindepth 1 -maxdepth 1 -print -quit) \
        || die "cannot read $home"
    if [[ -z $listing ]]; then
        cp -a "$SKEL/." "$home/"
        chmod 0750 "$home"
        chown -R --no-dereference "$uid:$gid" "$home"
        printf 'devenv-entrypoint: new home %s filled from %s\n' "$home" "$SKEL" >&2
    fi
fi

# Always: the home directory itself belongs to the user, with a sane mode.
# chmod needs ownership (no FOWNER), so take it back briefly if needed.
owner=$(stat -c %u:%g "$home")
mode=$(stat -c %a "$home")
case $mode in
    700 | 750 | 755) ;;
    *)
        chown root:root "$home"
        chmod 0750 "$home"
        owner=0:0
        ;;
esac
[[ $owner == "$uid:$gid" ]] || chown "$uid:$gid" "$home"

# --- sshd ----------------------------------------------------------------------

mkdir -p /run/sshd
chown root:root /run/sshd
chmod 0755 /run/sshd

# Login records, as a boot would reset them: sshd (UsePAM no) writes utmp
# itself and logs "logout() returned an error" for every pty session without
# it; a restarted container must not list the sessions of its last run.
: >/run/utmp
chown root:utmp /run/utmp
chmod 0664 /run/utmp

/usr/sbin/sshd -t || die "sshd configuration or host key is unusable (see above)"

printf 'devenv-entrypoint: starting sshd for %s (uid %s)\n' "$user" "$uid" >&2
exec /usr/sbin/sshd -D -e "$@"
