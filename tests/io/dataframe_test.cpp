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

TEST(CategoricalColumn, EmptyLabelsCanBeMissingValues) {
  const Column with_empty = Column::categorical("id", {"CL:2", "", "CL:1", ""});
  EXPECT_EQ(with_empty.categories, (std::vector<std::string>{"", "CL:1", "CL:2"}));
  const Column missing = Column::categorical_or_missing("id", {"CL:2", "", "CL:1", ""});
  EXPECT_EQ(missing.categories, (std::vector<std::string>{"CL:1", "CL:2"}));
  EXPECT_EQ(missing.codes, (std::vector<std::int32_t>{1, -1, 0, -1}));
  EXPECT_TRUE(missing.is_missing(1));
  EXPECT_EQ(missing.value_as_string(0), "CL:2");
  const Column none = Column::categorical_or_missing("id", {"", ""});
  EXPECT_TRUE(none.categories.empty());
  EXPECT_EQ(none.codes, (std::vector<std::int32_t>{-1, -1}));
  EXPECT_EQ(Column::categorical_or_missing("id", {"a", "b"}).codes, Column::categorical("id", {"a", "b"}).codes);
}

}  // namespace
}  // namespace celltyper
