/* achilles-tui: options, signals, the captured stderr, and the main loop,
 * which only waits (poll on the keyboard, the worker's wakeup and the
 * signal pipe), dispatches and redraws. */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include "commands.h"
#include "repl.h"
#include "screen.h"
#include "tui.h"

#define USAGE_LINE "usage: achilles-tui [-U] [-C] [SESSION]\n"
static const char *usage_text =
    USAGE_LINE
    "\n"
    "The Achilles workbench: trains runs in the background and shows their loss\n"
    "and pair-43 accuracy curves, the run list, heatmaps and a log, with a\n"
    "command prompt (TAB completes, 'help' lists the commands).\n"
    "\n"
    "  SESSION   a snapshot name under sessions/ or a directory path (default:\n"
    "            sessions/default, made from the built-in demo if missing)\n"
    "  -U        ASCII only (no braille curves or Unicode shading)\n"
    "  -C        no colour (also when NO_COLOR is set)\n"
    "  -h        this help\n"
    "\n"
    "Keys: F1/? help, F2 runs, F3 heatmap, F5 pause/resume, F10/q quit.\n"
    "'man achilles' documents every command.\n";

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGWINCH) tui_proc.winch = 1;
    else if (sig == SIGHUP) tui_proc.hup = 1;
    else tui_proc.term = sig;
    if (tui_proc.sig_pipe[1] >= 0) {
        ssize_t ignored = write(tui_proc.sig_pipe[1], "s", 1);
        (void)ignored;
    }
    errno = saved;
}

/* A crash (or SIGQUIT): give the terminal back, then die of the signal. */
static void on_fatal(int sig)
{
    tui_screen_crash_restore();
    raise(sig); /* SA_RESETHAND: the default action, once this returns */
}

static int install_signals(void)
{
    if (pipe(tui_proc.sig_pipe)) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(tui_proc.sig_pipe[i], F_SETFL, fcntl(tui_proc.sig_pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(tui_proc.sig_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGWINCH};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};
    for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++) sigaction(fatal[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void feed(tui *app, const char *s) { tui_repl_feed(app, s, strlen(s)); }

/* F5: pause the focused run, or resume it. */
static void toggle_pause(tui *app)
{
    tui_run *r = tui_focus(app);
    char err[512];
    if (!r) return;
    int rc;
    if (r->state == RS_RUNNING || r->state == RS_QUEUED) rc = tui_pause_run(app, r, err, sizeof err);
    else rc = tui_resume_run(app, r, err, sizeof err);
    if (rc) tui_log(app, "F5: %s", err);
    else tui_log(app, "run %d %s", r->id, r->state == RS_PAUSED ? "paused" : "queued again");
}

/* A key while the help overlay is up: 1 when it was the overlay's (it
 * scrolls, or closes it). Other keys close it and then act as usual, so
 * typing a command goes straight to the prompt; F10, a resize and Ctrl-L
 * leave it open. */
static int overlay_key(tui *app, unsigned c, int is_key)
{
    tui_page *p = &app->page;
    int page = tui_screen_page_rows(app) - 1;
    if (page < 1) page = 1;
    /* scrolling past the end is clamped when drawn */
    if (is_key) {
        switch ((int)c) {
        case KEY_UP: p->scroll -= p->scroll > 0; return 1;
        case KEY_DOWN: p->scroll++; return 1;
        case KEY_PPAGE: p->scroll = p->scroll > page ? p->scroll - page : 0; return 1;
        case KEY_NPAGE: p->scroll += page; return 1;
        case KEY_HOME: p->scroll = 0; return 1;
        case KEY_END: p->scroll = INT_MAX / 2; return 1;
        case KEY_F(1): app->view.help_shown = 0; return 1;
        case KEY_F(10):
        case KEY_RESIZE: return 0;
        default: break;
        }
    } else if (c == ' ') {
        p->scroll += page;
        return 1;
    } else if (c == 'q' || c == 27) {
        app->view.help_shown = 0;
        return 1;
    } else if (c == 12) return 0; /* Ctrl-L */
    app->view.help_shown = 0;
    return 0;
}

static void on_key(tui *app, unsigned c, int is_key)
{
    tui_view *v = &app->view;
    app->dirty = 1;
    if (v->help_shown && overlay_key(app, c, is_key)) return;
    if (is_key) {
        int page = tui_screen_log_rows(app) - 1;
        switch ((int)c) {
        case KEY_F(1): tui_help_page(app, NULL); break;
        case KEY_F(2): v->runs_full = !v->runs_full; break;
        case KEY_F(3): v->runs_full = 0, tui_screen_toggle_heat(app); break;
        case KEY_F(5): toggle_pause(app); break;
        case KEY_F(10): app->quit = 1; break;
        case KEY_PPAGE: v->log_scroll += page > 0 ? page : 1; break;
        case KEY_NPAGE: v->log_scroll = v->log_scroll > page ? v->log_scroll - page : 0; break;
        case KEY_RESIZE: tui_screen_resize(app, 0, 0); break;
        case KEY_UP: feed(app, "\033[A"); break;
        case KEY_DOWN: feed(app, "\033[B"); break;
        case KEY_RIGHT: feed(app, "\033[C"); break;
        case KEY_LEFT: feed(app, "\033[D"); break;
        case KEY_HOME: feed(app, "\033[H"); break;
        case KEY_END: feed(app, "\033[F"); break;
        case KEY_DC: feed(app, "\033[3~"); break;
        case KEY_BACKSPACE: feed(app, "\177"); break;
        case KEY_ENTER: feed(app, "\r"); break;
        default: break;
        }
        return;
    }
    int empty = tui_repl_line_empty();
    if (empty && c == 'q') app->quit = 1;
    else if (empty && c == '?') tui_help_page(app, NULL);
    else if (c == 3) feed(app, "\001\013"); /* Ctrl-C: drop the line */
    else if (c == 12) tui_screen_repaint(app); /* Ctrl-L */
    else if (c == 27 && v->runs_full) v->runs_full = 0;
    else {
        char mb[MB_LEN_MAX + 1];
        size_t n;
        mbstate_t st;
        memset(&st, 0, sizeof st);
        if (c < 0x80) mb[0] = (char)c, n = 1;
        else if ((n = wcrtomb(mb, (wchar_t)c, &st)) == (size_t)-1) return;
        tui_repl_feed(app, mb, n);
    }
}

static int list_commands(void)
{
    for (int i = 0; i < tui_ncommands; i++) printf("%s\t%s\n", tui_commands[i].name, tui_commands[i].args);
    return 0;
}

int main(int argc, char **argv)
{
    int ascii = 0, mono = 0;
    const char *session = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--list-commands")) return list_commands();
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!strcmp(a, "--")) {
            if (i + 1 < argc) session = argv[++i];
            if (i + 1 < argc) {
                fprintf(stderr, "achilles-tui: one session at a time\n" USAGE_LINE);
                return 2;
            }
            break;
        }
        if (a[0] == '-' && a[1]) {
            for (const char *p = a + 1; *p; p++) {
                if (*p == 'U') ascii = 1;
                else if (*p == 'C') mono = 1;
                else {
                    fprintf(stderr, "achilles-tui: unknown option '%s' (-h for help)\n" USAGE_LINE, a);
                    return 2;
                }
            }
            continue;
        }
        if (session) {
            fprintf(stderr, "achilles-tui: one session at a time ('%s' and '%s')\n" USAGE_LINE, session, a);
            return 2;
        }
        session = a;
    }
    /* characters from the locale; numbers stay in the C locale */
    setlocale(LC_CTYPE, "");
    const char *no_color = getenv("NO_COLOR");
    tui_opts o = {"sessions", !ascii && !strcmp(nl_langinfo(CODESET), "UTF-8"), !mono && !(no_color && *no_color)};
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "achilles-tui: needs a terminal; for training without one, use 'achilles train'\n");
        return 2;
    }
    /* UTF-8: Unicode box lines, not the VT100 set some terminals garble */
    if (o.utf8) setenv("NCURSES_NO_UTF8_ACS", "1", 0);
    static tui app; /* large (the log, the runs): not on the stack */
    char err[1024] = "";
    if (tui_init(&app, &o, err, sizeof err) || tui_open(&app, session, err, sizeof err)) {
        fprintf(stderr, "achilles-tui: %s\n", err);
        tui_free(&app);
        return 1;
    }
    if (install_signals()) {
        fprintf(stderr, "achilles-tui: cannot set up signals\n");
        tui_free(&app);
        return 1;
    }
    /* stderr goes to a file while the screen is up, and is shown after */
    FILE *captured = tmpfile();
    int real_stderr = dup(STDERR_FILENO);
    if (captured && real_stderr >= 0) dup2(fileno(captured), STDERR_FILENO);
    char hist[TUI_PATH];
    tui_history_path(hist, sizeof hist);
    int status = 0;
    if (tui_screen_init(&app, err, sizeof err) || tui_repl_init(&app, hist, err, sizeof err)) {
        status = 1;
        app.quit = 1;
    }
    while (!app.quit) {
        if (tui_proc.term || tui_proc.hup) break;
        if (tui_proc.winch) {
            tui_proc.winch = 0;
            tui_screen_resize(&app, 0, 0);
        }
        if (app.dirty) tui_screen_draw(&app);
        struct pollfd p[3] = {{STDIN_FILENO, POLLIN, 0}, {tui_worker_wake_fd(app.worker), POLLIN, 0},
                              {tui_proc.sig_pipe[0], POLLIN, 0}};
        if (poll(p, 3, 1000) < 0 && errno != EINTR) break;
        if (p[2].revents) {
            char buf[64];
            while (read(tui_proc.sig_pipe[0], buf, sizeof buf) > 0) {
            }
        }
        if (tui_handle_events(&app)) app.dirty = 1;
        if (p[0].revents & (POLLHUP | POLLERR)) tui_proc.hup = 1; /* the terminal went away */
        unsigned c;
        int is_key;
        while (!app.quit && app.screen && tui_screen_key(&app, &c, &is_key) == OK) on_key(&app, c, is_key);
    }
    int sig = tui_proc.hup ? SIGHUP : tui_proc.term;
    if (!tui_proc.hup && app.screen) {
        tui_log(&app, "saving the session ...");
        tui_screen_draw(&app);
    }
    flushinp(); /* "quit" typed after q quit: the rest must not reach the shell */
    tui_repl_close(&app);
    char serr[1024] = "";
    int saved = tui_shutdown(&app, serr, sizeof serr) == 0;
    tui_screen_end(&app);
    tcflush(STDIN_FILENO, TCIFLUSH);
    if (captured && real_stderr >= 0) {
        fflush(stderr);
        dup2(real_stderr, STDERR_FILENO);
        close(real_stderr);
        rewind(captured);
        char buf[4096];
        size_t n, total = 0;
        while ((n = fread(buf, 1, sizeof buf, captured)) > 0) {
            if (!total) fputs("achilles-tui: messages while the screen was up:\n", stderr);
            fwrite(buf, 1, n, stderr);
            total += n;
        }
        fclose(captured);
    }
    if (err[0] && status) fprintf(stderr, "achilles-tui: %s\n", err);
    if (!saved) {
        fprintf(stderr, "achilles-tui: the session could not be saved: %s\n", serr);
        status = 1;
    } else if (!tui_proc.hup) printf("achilles-tui: session '%s' saved in %s\n", app.session_name, app.session_dir);
    tui_free(&app);
    if (!status && sig) status = 128 + sig;
    return status;
}
