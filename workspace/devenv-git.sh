# /etc/profile.d/devenv-git.sh: installed by the devenv workspace image.
# On an interactive login, warn (on stderr) when the git identity is unset.

case $- in
    *i*)
        if command -v git >/dev/null 2>&1; then
            if [ -z "$(git config --global user.name 2>/dev/null)" ]; then
                echo 'devenv: set your git identity: git config --global user.name "Your Name"' >&2
            fi
            if [ -z "$(git config --global user.email 2>/dev/null)" ]; then
                echo 'devenv: set your git identity: git config --global user.email you@example.com' >&2
            fi
        fi
        ;;
esac
