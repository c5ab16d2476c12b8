import CProcessSpawn
import Foundation
import NIOCore
import NIOPosix

/// A process started with its standard streams joined to this process: three pipes, or one
/// pseudo-terminal (stdin, stdout and stderr all on it, the process leading a session with it
/// as its controlling terminal). The streams are NIO pipe channels, so no thread blocks on
/// them; the wait for the end runs on NIO's thread pool.
///
/// The only place Edged spawns processes for exec and attach sessions: `posix_spawn` with file
/// actions, nothing of Foundation's `Process`.
public final class InteractiveProcess: Sendable {
    let pid: pid_t
    /// Writes go to the process's stdin (or its terminal).
    let input: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    /// Its stdout (or everything from its terminal).
    let output: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    /// Its stderr; `nil` with a terminal.
    let errorOutput: NIOAsyncChannel<ByteBuffer, ByteBuffer>?
    /// The terminal's master side, for window sizes; -1 without a terminal. Owned by ``output``.
    let terminal: Int32

    private init(pid: pid_t, input: NIOAsyncChannel<ByteBuffer, ByteBuffer>, output: NIOAsyncChannel<ByteBuffer, ByteBuffer>,
                 errorOutput: NIOAsyncChannel<ByteBuffer, ByteBuffer>?, terminal: Int32) {
        self.pid = pid
        self.input = input
        self.output = output
        self.errorOutput = errorOutput
        self.terminal = terminal
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `arguments[0]` (a path) with `environment`, with pipes or a terminal.
    static func spawn(_ arguments: [String], environment: [String: String], terminal: Bool, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> InteractiveProcess {
        guard let executable = arguments.first else { throw SpawnError(description: "no command") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handling and an empty mask, whatever edgecore's are.
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        // Descriptors this side keeps, closed in the parent after the spawn.
        var childEnds: [Int32] = []
        var parentEnds: (input: Int32, output: Int32, error: Int32) = (-1, -1, -1)
        var master: Int32 = -1
        func failure(_ what: String) -> SpawnError {
            let reason = String(cString: strerror(errno))
            for fd in childEnds { close(fd) }
            for fd in [parentEnds.input, parentEnds.output, parentEnds.error, master] where fd >= 0 { close(fd) }
            return SpawnError(description: "\(what): \(reason)")
        }
        if terminal {
            var name = [CChar](repeating: 0, count: 128)
            master = cprocess_open_terminal(&name, name.count)
            guard master >= 0 else { throw failure("cannot open a terminal") }
            let slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // A new session; opening the terminal then makes it the controlling one.
            flags |= Int32(cprocess_spawn_setsid)
            posix_spawn_file_actions_addopen(&actions, 0, slavePath, O_RDWR, 0)
            posix_spawn_file_actions_adddup2(&actions, 0, 1)
            posix_spawn_file_actions_adddup2(&actions, 0, 2)
            parentEnds = (master, fcntl(master, F_DUPFD_CLOEXEC, 0), -1)
        } else {
            var stdinPipe: [Int32] = [0, 0], stdoutPipe: [Int32] = [0, 0], stderrPipe: [Int32] = [0, 0]
            guard cprocess_pipe(&stdinPipe) == 0 else { throw failure("cannot make a pipe") }
            childEnds.append(stdinPipe[0]); parentEnds.input = stdinPipe[1]
            guard cprocess_pipe(&stdoutPipe) == 0 else { throw failure("cannot make a pipe") }
            childEnds.append(stdoutPipe[1]); parentEnds.output = stdoutPipe[0]
            guard cprocess_pipe(&stderrPipe) == 0 else { throw failure("cannot make a pipe") }
            childEnds.append(stderrPipe[1]); parentEnds.error = stderrPipe[0]
            posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
            posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
            posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
            // A process group of its own, so that ending the session ends what it started.
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(truncatingIfNeeded: flags))
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        for fd in childEnds { close(fd) }
        childEnds = []
        guard spawned == 0 else {
            errno = spawned
            throw failure("cannot run \(executable)")
        }
        let bootstrap = NIOPipeBootstrap(group: group)
        let wrap: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        // Finishing the input's writer closes the descriptor: the process reads end-of-file.
        let input = try await bootstrap.takingOwnershipOfDescriptor(output: parentEnds.input) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                    wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            }
        }
        let output = try await bootstrap.takingOwnershipOfDescriptor(input: parentEnds.output, channelInitializer: wrap)
        let errorOutput = parentEnds.error >= 0 ? try await bootstrap.takingOwnershipOfDescriptor(input: parentEnds.error, channelInitializer: wrap) : nil
        return InteractiveProcess(pid: pid, input: input, output: output, errorOutput: errorOutput, terminal: master)
    }

    /// Waits for the process to end; its exit code (128 + the signal for a signal).
    func waitForExit() async throws -> Int32 {
        try await NIOThreadPool.singleton.runIfActive { [pid] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 {
                guard errno == EINTR else { return 255 }
            }
            let signal = status & 0x7f
            return signal == 0 ? (status >> 8) & 0xff : 128 + signal
        }
    }

    /// Sets the terminal's size (no effect without a terminal).
    func resize(width: UInt16, height: UInt16) {
        guard terminal >= 0 else { return }
        var size = winsize(ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(terminal, UInt(TIOCSWINSZ), &size)
    }

    /// Ends the process and everything in its group (or session).
    func kill() {
        _ = Glibc.kill(-pid, SIGKILL)
        _ = Glibc.kill(pid, SIGKILL)
    }
}
