# ~/.bashrc: the initial devenv workspace bashrc. It is yours: change it freely.
# (The image only copies it into a new, empty home; it is never overwritten.)
#
# Debian's bash also reads this file for non-interactive ssh commands (and so
# for sftp/scp): everything before the interactive check must print nothing.

# --- environment (all shells) ------------------------------------------------

__devenv_path_prepend() {
    case ":$PATH:" in
        *":$1:"*) ;;
        *) PATH="$1${PATH:+:$PATH}" ;;
    esac
}
__devenv_path_prepend "$HOME/.local/bin"
__devenv_path_prepend "$HOME/bin"
unset -f __devenv_path_prepend
export PATH

export LANG=C.UTF-8
export EDITOR=vim
export VISUAL=vim
export GIT_EDITOR=vim
export PAGER=less
export LESS=-R

# --- interactive shells only -------------------------------------------------

case $- in
    *i*) ;;
    *) return ;;
esac

# History: large, shared between sessions, no duplicates or space-prefixed lines.
HISTCONTROL=ignoreboth:erasedups
HISTSIZE=10000
HISTFILESIZE=20000
HISTTIMEFORMAT='%F %T '
shopt -s histappend cmdhist
shopt -s checkwinsize
shopt -s globstar 2>/dev/null

# Programmable completion (git, make, ssh, ...).
if ! shopt -oq posix; then
    if [ -f /usr/share/bash-completion/bash_completion ]; then
        . /usr/share/bash-completion/bash_completion
    elif [ -f /etc/bash_completion ]; then
        . /etc/bash_completion
    fi
fi

# Colours for ls and grep.
if [ -x /usr/bin/dircolors ]; then
    eval "$(dircolors -b)"
    alias ls='ls --color=auto'
    alias grep='grep --color=auto'
fi
alias ll='ls -alF'
alias la='ls -A'

# Git-aware prompt: user@host cwd (branch*), "*" when the work tree is dirty
# (modified, staged or untracked files). The branch name is printed by a
# command substitution inside PS1, so it is never re-expanded by the shell:
# a branch called '$(...)' cannot run anything. In a huge repository, set
# DEVENV_PROMPT_DIRTY=0 to skip the (slower) dirty check.
__devenv_git_prompt() {
    local branch dirty=
    branch=$(git symbolic-ref --quiet --short HEAD 2>/dev/null) \
        || branch=$(git rev-parse --short HEAD 2>/dev/null) \
        || return 0
    if [ "${DEVENV_PROMPT_DIRTY:-1}" != 0 ] \
        && [ "$(git rev-parse --is-inside-work-tree 2>/dev/null)" = true ] \
        && [ -n "$(git status --porcelain --ignore-submodules=dirty 2>/dev/null | head -n 1)" ]; then
        dirty='*'
    fi
    printf ' (%s%s)' "$branch" "$dirty"
}

if [ -n "${TERM:-}" ] && [ "$TERM" != dumb ] && tput setaf 1 >/dev/null 2>&1; then
    PS1='\[\e[32m\]\u@\h\[\e[0m\] \[\e[34m\]\w\[\e[33m\]$(__devenv_git_prompt)\[\e[0m\]\$ '
else
    PS1='\u@\h \w$(__devenv_git_prompt)\$ '
fi

# Window title in terminals that support it.
case ${TERM:-} in
    xterm* | rxvt* | screen* | tmux*)
        PS1="\[\e]0;\u@\h: \w\a\]$PS1"
        ;;
esac

# Append each command to the history file right away (several sessions).
PROMPT_COMMAND="history -a${PROMPT_COMMAND:+; $PROMPT_COMMAND}"
