// Package osfile provides atomic, durable output files and kernel-assisted copies, per
// platform.
//
// An output is written to a temporary file beside its target (CreateTemp), made durable
// (os.File.Sync), moved into place (Publish) and its directory entry made durable
// (SyncDir). A writer that was killed leaves only its temporary file, which
// RemoveStaleTemps deletes on a later write to the same target once the writer's process
// is gone. Copies between files go through os.File.ReadFrom, which uses the kernel where it
// can and a plain buffered copy elsewhere, or through CopyRange, which also shares whole
// blocks with the source on file systems that clone (XFS, btrfs); StartWriteback lets the
// disk start on copied bytes while copying goes on.
//
// What each platform does (the promise is the same everywhere: after Publish and SyncDir
// return, the target holds the complete new file, also after a power loss; before, it
// holds its old content or nothing):
//
//	                  linux                 darwin                windows
//	file sync         fsync                 fcntl(F_FULLFSYNC)*   FlushFileBuffers
//	publish, new      link, remove temp**   link, remove temp**   MoveFileEx, no replace, write-through
//	publish, replace  rename                rename                MoveFileEx, replace, write-through
//	directory sync    fsync of the dir      F_FULLFSYNC of dir*   nothing to do: the move was
//	                                                              written through
//	file-to-file copy copy_file_range       buffered (32 KiB)     buffered (32 KiB)
//	CopyRange         FICLONERANGE, then    buffered (1 MiB)      buffered (1 MiB)
//	                  copy_file_range
//	early writeback   sync_file_range       none: the sync does it all
//	stale temp files  kill(pid, 0)          kill(pid, 0)          OpenProcess, exit code
//
// * os.File.Sync on darwin issues F_FULLFSYNC, which flushes the drive's cache too, and
// falls back to fsync where the file system does not support it (SMB). ** A hard link
// fails when the target exists, which a rename would not; file systems without hard links
// get a rename. Other unix systems get the linux column, with the copy os.File.ReadFrom
// chooses there and no early writeback; systems that are neither unix nor windows never
// take a temporary file for stale, since they cannot tell whether its writer lives.
//
// On windows a file cannot be replaced while another program holds it open without
// sharing delete access (as most programs, Python and PyTorch included, open files);
// Publish retries briefly, since virus scanners and indexers hold new files for a moment,
// and then fails with ErrInUse, leaving the target as it was.
package osfile
