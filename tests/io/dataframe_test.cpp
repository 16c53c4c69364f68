// Missing labels and group values as the readers' callers see them (dataframe.hpp).
#include <celltyper/dataframe.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace celltyper {
namespace {

TEST(MissingLabel, TheTextOfAMissingValueAndCellxgenesUnknown) {
  for (const char* missing : {"", " ", "nan", "NaN", "NA", "<NA>", "None", "null", "unknown", "Unknown", " UNKNOWN "}) {
    EXPECT_TRUE(is_missing_label(missing)) << "'" << missing << "'";
  }
  // Labels that only contain such words are labels.
  for (const char* label : {"B", "unknown cell", "Unknown_1", "na", "NK", "unknow"}) EXPECT_FALSE(is_missing_label(label)) << label;
}

TEST(GroupValue, MissingValuesAreOneGroupNamedAsSuch) {
  const Column groups = Column::from_strings("donor_id", {"d0", "", "NA", "unknown", "d1"});
  EXPECT_EQ(group_value(groups, 0), "d0");
  for (std::size_t row : {1, 2, 3}) EXPECT_EQ(group_value(groups, row), kMissingGroup) << row;
  EXPECT_EQ(group_value(groups, 4), "d1");
  const Column categorical = Column::categorical("batch", {"a", "b", "a"});
  EXPECT_EQ(group_value(categorical, 1), "b");
}

}  // namespace
}  // namespace celltyper
