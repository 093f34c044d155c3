# ~/.profile: executed by login shells (bash reads it when neither
# ~/.bash_profile nor ~/.bash_login exists). Yours to change.

# ~/bin and ~/.local/bin on PATH for non-bash login shells too.
for __d in "$HOME/.local/bin" "$HOME/bin"; do
    case ":$PATH:" in
        *":$__d:"*) ;;
        *) PATH="$__d:$PATH" ;;
    esac
done
unset __d
export PATH

# bash: the interesting settings (prompt, history, completion) are in .bashrc.
if [ -n "${BASH_VERSION:-}" ] && [ -f "$HOME/.bashrc" ]; then
    . "$HOME/.bashrc"
fi
