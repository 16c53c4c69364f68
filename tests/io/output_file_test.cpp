// OutputFile (celltyper/output_file.hpp): the one way celltyper writes an output. Inputs refused
// by inode, symlinks followed, devices and FIFOs written through, temporary files removed on
// exceptions and signals, stale temporaries of dead processes swept.
#include <celltyper/error.hpp>
#include <celltyper/output_file.hpp>

#include "support/test_support.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

namespace celltyper {
namespace {

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }


/// Temporary files of this process named after `name` in `dir`.
std::vector<std::string> own_temporaries(const fs::path& dir, const std::string& name) {
  std::vector<std::string> names;
  const std::string prefix = "." + name + ".tmp-" + std::to_string(getpid()) + "-";
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(prefix, 0) == 0) names.push_back(file);
  }
  return names;
}

/// The message of the InputError `action` throws ("" when it throws nothing or something else).
template <typename Action>
std::string input_error_of(Action action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  } catch (...) {
    return "(another exception)";
  }
  return "";
}

/// A pid that is certainly not running: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

TEST(OutputFile, WritesThroughATemporaryFileAndLeavesNothingElse) {
  test::TempDir dir;
  const std::string path = dir.file("out.txt");
  write_text(path, "old");
  {
    OutputFile output(path);
    EXPECT_EQ(fs::path(output.temporary()).parent_path(), dir.path());
    EXPECT_FALSE(fs::exists(output.temporary())) << "the writer creates the temporary file";
    write_text(output.temporary(), "new");
    EXPECT_EQ(test::read_file(path), "old") << "the target changes only on commit";
    output.commit();
    EXPECT_TRUE(output.committed());
  }
  EXPECT_EQ(test::read_file(path), "new");
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty());
}

TEST(OutputFile, KeepsThePermissionsOfTheFileItReplaces) {
  test::TempDir dir;
  const std::string path = dir.file("private.txt");
  write_text(path, "old");
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  write_output_file(path, "new");
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::mask, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(test::read_file(path), "new");
}

/// Write `bytes` bytes of `fill` to `path` (allocated, not sparse).
void write_filled(const std::string& path, std::size_t bytes, char fill) {
  std::ofstream out(path, std::ios::binary);
  const std::string block(std::size_t{1} << 20, fill);
  for (std::size_t done = 0; done < bytes; done += block.size()) out.write(block.data(), static_cast<std::streamsize>(std::min(block.size(), bytes - done)));
}

TEST(OutputFile, ALargeReplacedFileIsFreedInTheBackgroundAndNothingIsLeft) {
  test::TempDir dir;
  const std::string path = dir.file("big.h5ad");
  constexpr std::size_t kBytes = std::size_t{65} << 20;  // above the 64 MiB threshold
  write_filled(path, kBytes, 'o');
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  const int old_fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(old_fd, 0);
  write_output_file(path, "new");
  EXPECT_EQ(test::read_file(path), "new");
  // The old file is gone from the directory (its second name unlinked by the detached process)
  // and its inode is released once our descriptor closes; poll, the process runs on its own.
  bool clean = false;
  for (int attempt = 0; attempt < 200 && !clean; ++attempt) {
    clean = test::temporaries_in(dir.path()).empty();
    if (!clean) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_TRUE(clean) << "the replaced file's second name was not removed";
  struct stat old_info {};
  ASSERT_EQ(::fstat(old_fd, &old_info), 0);
  EXPECT_EQ(old_info.st_ino, before.st_ino);
  EXPECT_EQ(old_info.st_nlink, 0U) << "the replaced file still has a name";
  char first = 0;
  EXPECT_EQ(::pread(old_fd, &first, 1, 0), 1);
  EXPECT_EQ(first, 'o') << "an open descriptor still reads the old content";
  ::close(old_fd);
}

TEST(OutputFile, AReplacedFileWithAnotherNameKeepsItsContent) {
  test::TempDir dir;
  const std::string path = dir.file("big.h5ad");
  const std::string other = dir.file("other-name.h5ad");
  write_filled(path, std::size_t{65} << 20, 'o');
  ASSERT_EQ(::link(path.c_str(), other.c_str()), 0);
  write_output_file(path, "new");
  EXPECT_EQ(test::read_file(path), "new");
  EXPECT_EQ(fs::file_size(other), std::size_t{65} << 20);
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty());
}

TEST(OutputFile, ExceptionBeforeCommitRemovesTheTemporaryFileAndKeepsTheTarget) {
  test::TempDir dir;
  const std::string path = dir.file("out.txt");
  write_text(path, "old");
  try {
    OutputFile output(path);
    write_text(output.temporary(), "half");
    throw std::runtime_error("writer failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(test::read_file(path), "old");
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty());
}

TEST(OutputFile, RefusesAnInputByInodeHardLinkAndOtherSpellings) {
  test::TempDir dir;
  fs::create_directory(dir.path() / "sub");
  const std::string input = dir.file("input.h5ad");
  write_text(input, "precious");
  fs::create_hard_link(input, dir.file("link.h5ad"));
  fs::create_symlink(input, dir.file("alias.h5ad"));
  const std::string other_spelling = (dir.path() / "sub" / ".." / "." / "input.h5ad").string();

  EXPECT_NE(input_error_of([&] { check_outputs({dir.file("link.h5ad")}, {input}); })
                .find("link.h5ad: the output is the same file as the input " + input),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { check_outputs({other_spelling}, {input}); }).find("the same file as the input"),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { check_outputs({dir.file("alias.h5ad")}, {input}); }).find("the same file as the input"),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { check_outputs({input}, {"", input}); }).find("the output is an input of this command"),
            std::string::npos);
  // Two outputs on one path (neither exists yet).
  EXPECT_NE(input_error_of([&] { check_outputs({dir.file("a.csv"), dir.file("sub/../a.csv")}, {}); })
                .find("the same file is given for two outputs"),
            std::string::npos);
  // Another file, missing inputs and empty strings pass; an output in a folder that does not
  // exist fails now (IoError), not after the work.
  EXPECT_EQ(input_error_of([&] { check_outputs({dir.file("new.h5ad"), ""}, {input, "", "nope"}); }), "");
  EXPECT_THROW(check_outputs({dir.file("missing/x")}, {input}), IoError);
  EXPECT_NE(input_error_of([&] { check_outputs({"-"}, {}); }).find("cannot go to standard output"), std::string::npos);
  EXPECT_EQ(test::read_file(input), "precious");
}

TEST(OutputFile, FollowsASymlinkToWriteItsTarget) {
  test::TempDir dir;
  fs::create_directory(dir.path() / "real");
  const std::string target = dir.file("real/data.csv");
  write_text(target, "old");
  fs::create_symlink("real/data.csv", dir.file("link.csv"));  // relative link
  write_output_file(dir.file("link.csv"), "new");
  EXPECT_TRUE(fs::is_symlink(dir.file("link.csv"))) << "the link was replaced by a file";
  EXPECT_EQ(test::read_file(target), "new");
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty());
  EXPECT_TRUE(test::temporaries_in(dir.path() / "real").empty());
  // A dangling link: its target is created.
  fs::create_symlink(dir.file("real/later.csv"), dir.file("dangling.csv"));
  write_output_file(dir.file("dangling.csv"), "created");
  EXPECT_TRUE(fs::is_symlink(dir.file("dangling.csv")));
  EXPECT_EQ(test::read_file(dir.file("real/later.csv")), "created");
  // A loop is refused.
  fs::create_symlink(dir.file("loop_b"), dir.file("loop_a"));
  fs::create_symlink(dir.file("loop_a"), dir.file("loop_b"));
  EXPECT_NE(input_error_of([&] { OutputFile output(dir.file("loop_a")); }).find("too many levels of symbolic links"), std::string::npos);
}

TEST(OutputFile, WritesThroughACharacterDevice) {
  struct stat before {};
  ASSERT_EQ(stat("/dev/null", &before), 0);
  ASSERT_TRUE(S_ISCHR(before.st_mode));
  {
    OutputFile output("/dev/null");
    EXPECT_TRUE(output.writes_through());
    EXPECT_NE(fs::path(output.temporary()).parent_path(), fs::path("/dev")) << "staged in the temp folder, not in /dev";
    write_text(output.temporary(), "discarded");
    output.commit();
    EXPECT_FALSE(fs::exists(output.temporary()));
  }
  write_output_file("/dev/null", "again");
  struct stat after {};
  ASSERT_EQ(stat("/dev/null", &after), 0);
  EXPECT_TRUE(S_ISCHR(after.st_mode)) << "/dev/null was replaced";
  EXPECT_EQ(after.st_rdev, before.st_rdev);
  EXPECT_TRUE(own_temporaries(fs::temp_directory_path(), "null").empty());
}

TEST(OutputFile, WritesThroughAFifo) {
  test::TempDir dir;
  const std::string fifo = dir.file("pipe");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto reader = std::async(std::launch::async, [&] { return test::read_file(fifo); });
  const std::string content(200000, 'x');  // more than a pipe buffer
  write_output_file(fifo, content);
  EXPECT_EQ(reader.get(), content);
  struct stat info {};
  ASSERT_EQ(lstat(fifo.c_str(), &info), 0);
  EXPECT_TRUE(S_ISFIFO(info.st_mode)) << "the FIFO was replaced";
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty());
  EXPECT_TRUE(own_temporaries(fs::temp_directory_path(), "pipe").empty());
}

TEST(OutputFile, RefusesADirectoryABlockDeviceAndAMissingDirectory) {
  test::TempDir dir;
  fs::create_directory(dir.path() / "folder");
  EXPECT_NE(input_error_of([&] { OutputFile output(dir.file("folder")); }).find("folder: the output path is a directory; give a file name"),
            std::string::npos);
  const std::string block = dir.file("block");
  if (mknod(block.c_str(), S_IFBLK | 0600, makedev(7, 200)) == 0) {
    EXPECT_NE(input_error_of([&] { OutputFile output(block); }).find("the output path is a block device"), std::string::npos);
  } else {
    std::printf("mknod of a block device not permitted here (%s): block device case not run\n", std::strerror(errno));
  }
  try {
    OutputFile output(dir.file("no/such/dir/out.csv"));
    ADD_FAILURE() << "a missing directory was accepted";
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find("cannot create"), std::string::npos) << error.what();
  }
}

TEST(OutputFile, SweepsStaleTemporariesOfDeadProcessesOnly) {
  test::TempDir dir;
  const std::string path = dir.file("model.h5");
  const pid_t dead = dead_pid();
  const std::string stale = dir.file(fmt::format(".model.h5.tmp-{}-0badf00d", dead));
  const std::string alive = dir.file(fmt::format(".model.h5.tmp-{}-0badf00d", getppid()));  // the parent runs
  const std::string other = dir.file(fmt::format(".other.h5.tmp-{}-0badf00d", dead));      // another output's
  for (const auto& file : {stale, alive, other}) write_text(file, "partial");
  write_output_file(path, "model");
  EXPECT_FALSE(fs::exists(stale)) << "a dead process's temporary file was kept";
  EXPECT_TRUE(fs::exists(alive)) << "a running process's temporary file was removed";
  EXPECT_TRUE(fs::exists(other));
  EXPECT_EQ(sweep_stale_temporaries(dir.file("other.h5")), 1u);
  EXPECT_FALSE(fs::exists(other));
  EXPECT_EQ(test::read_file(path), "model");
}

/// A child that makes an OutputFile, writes half of it, signals readiness and waits to be killed.
void expect_signal_removes_temporary(int signal_number) {
  test::TempDir dir;
  const std::string path = dir.file("out.h5ad");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    OutputFile output(path);
    const int fd = ::open(output.temporary().c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || ::write(fd, "half", 4) != 4) _exit(1);
    if (::write(ready[1], "1", 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(ready[1]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  close(ready[0]);
  EXPECT_EQ(test::temporaries_in(dir.path()).size(), 1u);
  kill(child, signal_number);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child did not end by the signal";
  EXPECT_EQ(WTERMSIG(status), signal_number) << "the signal was not re-raised";
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty()) << "the temporary file survived the signal";
  EXPECT_FALSE(fs::exists(path));
}

TEST(OutputFile, SigtermMidWriteLeavesNothing) { expect_signal_removes_temporary(SIGTERM); }
TEST(OutputFile, SigintMidWriteLeavesNothing) { expect_signal_removes_temporary(SIGINT); }

TEST(OutputFile, CommitTogetherIsAllOrNothing) {
  test::TempDir dir;
  const std::string h5ad = dir.file("out.h5ad");
  const std::string csv = dir.file("labels.csv");
  {
    OutputFile first(h5ad);
    OutputFile second(csv);
    write_text(first.temporary(), "h5ad");  // the CSV writer failed: its temporary file was never made
    EXPECT_THROW(commit_together({&first, &second}), IoError);
  }
  EXPECT_FALSE(fs::exists(h5ad)) << "the h5ad was committed without its CSV";
  EXPECT_FALSE(fs::exists(csv));
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty());
  {
    OutputFile first(h5ad);
    OutputFile second(csv);
    write_text(first.temporary(), "h5ad");
    write_text(second.temporary(), "csv");
    commit_together({&first, nullptr, &second});
  }
  EXPECT_EQ(test::read_file(h5ad), "h5ad");
  EXPECT_EQ(test::read_file(csv), "csv");
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty());
}

}  // namespace
}  // namespace celltyper
