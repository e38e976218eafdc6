#!/bin/sh
# llmdesk for this user only, without root:
#
#   ./install.sh                      install (or update) under ~/.local (PREFIX=... for elsewhere)
#   ./install.sh --uninstall          remove every file the install made; your chats, settings and
#                                     downloaded models stay
#   ./install.sh --uninstall --purge  also remove llmdesk's own folders (settings, chats, logs,
#                                     managed vLLM runtimes); downloaded models in the Hugging Face
#                                     cache always stay
#
# What was installed is listed in PREFIX/lib/llmdesk/installed-files, which the uninstall reads.
set -eu

APP_ID=io.github.llmdesk
prefix=${PREFIX:-$HOME/.local}
lib=$prefix/lib/llmdesk
manifest=$lib/installed-files
here=$(cd "$(dirname "$0")" && pwd)

refresh_caches() {  # only caches that exist already: making new ones would leave files behind
    if [ -f "$prefix/share/applications/mimeinfo.cache" ] && command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$prefix/share/applications" 2>/dev/null || true
    fi
    if [ -f "$prefix/share/icons/hicolor/icon-theme.cache" ] && command -v gtk-update-icon-cache >/dev/null 2>&1; then
        gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" 2>/dev/null || true
    fi
}

remove_empty_parents() {  # the folders the install made, innermost first, if nothing else is in them
    dir=$1
    while [ "$dir" != "$prefix" ] && [ "$dir" != "/" ] && rmdir "$dir" 2>/dev/null; do
        dir=$(dirname "$dir")
    done
}

uninstall() {
    if [ ! -f "$manifest" ]; then
        echo "llmdesk is not installed under $prefix (no $manifest)" >&2
        exit 1
    fi
    while IFS= read -r file; do
        case "$file" in
            "$prefix"/*) rm -f "$file"; remove_empty_parents "$(dirname "$file")" ;;
        esac
    done < "$manifest"
    rm -rf "$lib"
    remove_empty_parents "$(dirname "$lib")"
    if [ "${1:-}" = "--purge" ]; then
        # llmdesk's own folders (platformdirs' defaults on Linux); never the Hugging Face cache
        for dir in "${XDG_CONFIG_HOME:-$HOME/.config}/llmdesk" "${XDG_DATA_HOME:-$HOME/.local/share}/llmdesk" \
                   "${XDG_STATE_HOME:-$HOME/.local/state}/llmdesk" "${XDG_CACHE_HOME:-$HOME/.cache}/llmdesk"; do
            rm -rf "$dir"
            remove_empty_parents "$(dirname "$dir")"
        done
        echo "llmdesk and its settings, chats, logs and runtimes were removed; models in the Hugging Face cache stay."
    else
        echo "llmdesk was removed; your settings, chats and models stay (--purge removes llmdesk's own folders)."
    fi
    refresh_caches
}

install_app() {
    if [ ! -x "$here/app/llmdesk" ]; then
        echo "run install.sh from the unpacked llmdesk folder (app/llmdesk is missing)" >&2
        exit 1
    fi
    mkdir -p "$prefix/lib"
    # the new app next to the old one, then swapped: an install cut short leaves the old one working
    rm -rf "$lib.new"
    cp -R "$here/app" "$lib.new"
    rm -rf "$lib.old"
    [ -d "$lib" ] && mv "$lib" "$lib.old"
    mv "$lib.new" "$lib"
    rm -rf "$lib.old"
    : > "$manifest.tmp"
    mkdir -p "$prefix/bin"
    ln -sfn "$lib/llmdesk" "$prefix/bin/llmdesk"
    echo "$prefix/bin/llmdesk" >> "$manifest.tmp"
    (cd "$here/share" && find . -type f) | while IFS= read -r rel; do
        target=$prefix/share/${rel#./}
        mkdir -p "$(dirname "$target")"
        case "$rel" in
            *.desktop) sed -e "s|^Exec=.*|Exec=$prefix/bin/llmdesk %U|" -e "s|^TryExec=.*|TryExec=$prefix/bin/llmdesk|" \
                           "$here/share/$rel" > "$target" ;;
            *) cp "$here/share/$rel" "$target" ;;
        esac
        echo "$target" >> "$manifest.tmp"
    done
    mv "$manifest.tmp" "$manifest"
    refresh_caches
    echo "llmdesk is installed: $prefix/bin/llmdesk (and in your applications menu)."
    case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "Add $prefix/bin to PATH to start it from a terminal." ;; esac
}

case "${1:-}" in
    --uninstall) uninstall "${2:-}" ;;
    "") install_app ;;
    *) echo "usage: install.sh [--uninstall [--purge]]" >&2; exit 2 ;;
esac
