#include "celltyper/installed_files.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <system_error>

namespace celltyper {

std::vector<std::filesystem::path> installed_share_folders() {
  std::vector<std::filesystem::path> folders;
  const auto add = [&folders](const std::filesystem::path& top) {
    const std::filesystem::path folder = top / "share" / "celltyper";
    std::error_code error;
    if (std::filesystem::is_directory(folder, error) && std::find(folders.begin(), folders.end(), folder) == folders.end()) {
      folders.push_back(folder);
    }
  };
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) add(exe.parent_path());
  Dl_info self{};
  if (::dladdr(reinterpret_cast<const void*>(&installed_share_folders), &self) != 0 && self.dli_fname != nullptr) {
    // (linked into the executable, this code's file is the executable: its folder is added)
    // (an absolute path only: the main program may be named as it was typed, relative to nothing)
    const std::filesystem::path module(self.dli_fname);
    std::error_code same_error;
    const bool same = std::filesystem::equivalent(module, exe, same_error);
    if (module.is_absolute() && !same && !same_error) add(module.parent_path().parent_path().parent_path());
  }
  return folders;
}

std::filesystem::path installed_file(std::string_view name) {
  for (const std::filesystem::path& folder : installed_share_folders()) {
    std::filesystem::path candidate = folder / name;
    std::error_code error;
    if (std::filesystem::exists(candidate, error)) return candidate;
  }
  return {};
}

}  // namespace celltyper
