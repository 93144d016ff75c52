// NumPy .npz archives: a zip file whose members are .npy arrays.
// np.savez stores members uncompressed: they are mapped in place (zero copy). np.savez_compressed deflates
// them: such a member is inflated with zlib into an unlinked temporary file that is then mapped, so even a
// large compressed member does not sit in memory.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/npy.h"

namespace oq::data {

class NpzArchive {
 public:
  // Maps `path` and reads its zip central directory. Io/Data error naming the file.
  static NpzArchive open(const std::string& path);

  const std::string& path() const { return path_; }
  // Array names in archive order, without the ".npy" suffix ("x", "y", ...), each once.
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  // The member `name` (without ".npy"), found as numpy finds it: the member named exactly `name`, else `name`.npy,
  // the last of several so named. Data error naming the file and listing its members when absent.
  NpyArray array(const std::string& name) const;
  // Comma-separated member list for error messages ("x, y").
  std::string names_str() const;

  struct Member {
    std::string name;  // as stored in the zip, e.g. "x.npy"
    uint16_t method = 0;
    uint16_t flags = 0;
    uint32_t crc = 0;
    uint64_t comp_size = 0, size = 0, local_offset = 0;
  };
  const std::vector<Member>& members() const { return members_; }

 private:
  const Member* find(const std::string& name) const;
  // One warning per member name the archive holds twice, and per array stored as both NAME and NAME.npy.
  void warn_duplicates() const;
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  std::vector<Member> members_;
};

}  // namespace oq::data
