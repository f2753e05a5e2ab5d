-- Magento 2.4 Open Source (CE, entity_id keyed) catalog tables that the
-- feedcdc feeds read, written from ../../shared/reference/magento-schema.md §1
-- (db_schema.xml facts mapped to MariaDB DDL). Every statement ends with a
-- semicolon at the end of a line; CreateSchema splits on that.
-- Tables are created in dependency order (parents before children).

CREATE TABLE store_website (
  website_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  code varchar(32) DEFAULT NULL,
  name varchar(64) DEFAULT NULL,
  sort_order smallint(5) unsigned NOT NULL DEFAULT 0,
  default_group_id smallint(5) unsigned NOT NULL DEFAULT 0,
  is_default smallint(5) unsigned DEFAULT 0,
  PRIMARY KEY (website_id),
  UNIQUE KEY STORE_WEBSITE_CODE (code),
  KEY STORE_WEBSITE_SORT_ORDER (sort_order),
  KEY STORE_WEBSITE_DEFAULT_GROUP_ID (default_group_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Websites';

CREATE TABLE store_group (
  group_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  website_id smallint(5) unsigned NOT NULL DEFAULT 0,
  name varchar(255) NOT NULL,
  root_category_id int(10) unsigned NOT NULL DEFAULT 0,
  default_store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  code varchar(32) DEFAULT NULL,
  PRIMARY KEY (group_id),
  UNIQUE KEY STORE_GROUP_CODE (code),
  KEY STORE_GROUP_WEBSITE_ID (website_id),
  KEY STORE_GROUP_DEFAULT_STORE_ID (default_store_id),
  CONSTRAINT STORE_GROUP_WEBSITE_ID_STORE_WEBSITE_WEBSITE_ID FOREIGN KEY (website_id) REFERENCES store_website (website_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Store Groups';

CREATE TABLE store (
  store_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  code varchar(32) DEFAULT NULL,
  website_id smallint(5) unsigned NOT NULL DEFAULT 0,
  group_id smallint(5) unsigned NOT NULL DEFAULT 0,
  name varchar(255) NOT NULL,
  sort_order smallint(5) unsigned NOT NULL DEFAULT 0,
  is_active smallint(5) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (store_id),
  UNIQUE KEY STORE_CODE (code),
  KEY STORE_WEBSITE_ID (website_id),
  KEY STORE_IS_ACTIVE_SORT_ORDER (is_active, sort_order),
  KEY STORE_GROUP_ID (group_id),
  CONSTRAINT STORE_GROUP_ID_STORE_GROUP_GROUP_ID FOREIGN KEY (group_id) REFERENCES store_group (group_id) ON DELETE CASCADE,
  CONSTRAINT STORE_WEBSITE_ID_STORE_WEBSITE_WEBSITE_ID FOREIGN KEY (website_id) REFERENCES store_website (website_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Stores';

CREATE TABLE eav_entity_type (
  entity_type_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  entity_type_code varchar(50) NOT NULL,
  entity_model varchar(255) NOT NULL,
  attribute_model varchar(255) DEFAULT NULL,
  entity_table varchar(255) DEFAULT NULL,
  value_table_prefix varchar(255) DEFAULT NULL,
  entity_id_field varchar(255) DEFAULT NULL,
  is_data_sharing smallint(5) unsigned NOT NULL DEFAULT 1,
  data_sharing_key varchar(100) DEFAULT 'default',
  default_attribute_set_id smallint(5) unsigned NOT NULL DEFAULT 0,
  increment_model varchar(255) DEFAULT NULL,
  increment_per_store smallint(5) unsigned NOT NULL DEFAULT 0,
  increment_pad_length smallint(5) unsigned NOT NULL DEFAULT 8,
  increment_pad_char varchar(1) NOT NULL DEFAULT '0',
  additional_attribute_table varchar(255) DEFAULT NULL,
  entity_attribute_collection varchar(255) DEFAULT NULL,
  PRIMARY KEY (entity_type_id),
  KEY EAV_ENTITY_TYPE_ENTITY_TYPE_CODE (entity_type_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Entity Type';

CREATE TABLE eav_attribute (
  attribute_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  entity_type_id smallint(5) unsigned NOT NULL DEFAULT 0,
  attribute_code varchar(255) NOT NULL,
  attribute_model varchar(255) DEFAULT NULL,
  backend_model varchar(255) DEFAULT NULL,
  backend_type varchar(8) NOT NULL DEFAULT 'static',
  backend_table varchar(255) DEFAULT NULL,
  frontend_model varchar(255) DEFAULT NULL,
  frontend_input varchar(50) DEFAULT NULL,
  frontend_label varchar(255) DEFAULT NULL,
  frontend_class varchar(255) DEFAULT NULL,
  source_model varchar(255) DEFAULT NULL,
  is_required smallint(5) unsigned NOT NULL DEFAULT 0,
  is_user_defined smallint(5) unsigned NOT NULL DEFAULT 0,
  default_value text DEFAULT NULL,
  is_unique smallint(5) unsigned NOT NULL DEFAULT 0,
  note varchar(255) DEFAULT NULL,
  PRIMARY KEY (attribute_id),
  UNIQUE KEY EAV_ATTRIBUTE_ENTITY_TYPE_ID_ATTRIBUTE_CODE (entity_type_id, attribute_code),
  KEY EAV_ATTRIBUTE_FRONTEND_INPUT_ENTITY_TYPE_ID_IS_USER_DEFINED (frontend_input, entity_type_id, is_user_defined),
  CONSTRAINT EAV_ATTRIBUTE_ENTITY_TYPE_ID_EAV_ENTITY_TYPE_ENTITY_TYPE_ID FOREIGN KEY (entity_type_id) REFERENCES eav_entity_type (entity_type_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Attribute';

CREATE TABLE catalog_eav_attribute (
  attribute_id smallint(5) unsigned NOT NULL,
  frontend_input_renderer varchar(255) DEFAULT NULL,
  is_global smallint(5) unsigned NOT NULL DEFAULT 1,
  is_visible smallint(5) unsigned NOT NULL DEFAULT 1,
  is_searchable smallint(5) unsigned NOT NULL DEFAULT 0,
  is_filterable smallint(5) unsigned NOT NULL DEFAULT 0,
  is_comparable smallint(5) unsigned NOT NULL DEFAULT 0,
  is_visible_on_front smallint(5) unsigned NOT NULL DEFAULT 0,
  is_html_allowed_on_front smallint(5) unsigned NOT NULL DEFAULT 0,
  is_used_for_price_rules smallint(5) unsigned NOT NULL DEFAULT 0,
  is_filterable_in_search smallint(5) unsigned NOT NULL DEFAULT 0,
  used_in_product_listing smallint(5) unsigned NOT NULL DEFAULT 0,
  used_for_sort_by smallint(5) unsigned NOT NULL DEFAULT 0,
  apply_to varchar(255) DEFAULT NULL,
  is_visible_in_advanced_search smallint(5) unsigned NOT NULL DEFAULT 0,
  position int(11) NOT NULL DEFAULT 0,
  is_wysiwyg_enabled smallint(5) unsigned NOT NULL DEFAULT 0,
  is_used_for_promo_rules smallint(5) unsigned NOT NULL DEFAULT 0,
  is_required_in_admin_store smallint(5) unsigned NOT NULL DEFAULT 0,
  is_used_in_grid smallint(5) unsigned NOT NULL DEFAULT 0,
  is_visible_in_grid smallint(5) unsigned NOT NULL DEFAULT 0,
  is_filterable_in_grid smallint(5) unsigned NOT NULL DEFAULT 0,
  search_weight float NOT NULL DEFAULT 1,
  is_pagebuilder_enabled tinyint(1) NOT NULL DEFAULT 0,
  additional_data text DEFAULT NULL,
  PRIMARY KEY (attribute_id),
  KEY CATALOG_EAV_ATTRIBUTE_USED_FOR_SORT_BY (used_for_sort_by),
  KEY CATALOG_EAV_ATTRIBUTE_USED_IN_PRODUCT_LISTING (used_in_product_listing),
  CONSTRAINT CATALOG_EAV_ATTRIBUTE_ATTRIBUTE_ID_EAV_ATTRIBUTE_ATTRIBUTE_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog EAV Attribute Table';

CREATE TABLE eav_attribute_set (
  attribute_set_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  entity_type_id smallint(5) unsigned NOT NULL DEFAULT 0,
  attribute_set_name varchar(255) DEFAULT NULL,
  sort_order smallint(6) NOT NULL DEFAULT 0,
  PRIMARY KEY (attribute_set_id),
  UNIQUE KEY EAV_ATTRIBUTE_SET_ENTITY_TYPE_ID_ATTRIBUTE_SET_NAME (entity_type_id, attribute_set_name),
  KEY EAV_ATTRIBUTE_SET_ENTITY_TYPE_ID_SORT_ORDER (entity_type_id, sort_order),
  CONSTRAINT EAV_ATTRIBUTE_SET_ENTITY_TYPE_ID_EAV_ENTITY_TYPE_ENTITY_TYPE_ID FOREIGN KEY (entity_type_id) REFERENCES eav_entity_type (entity_type_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Attribute Set';

CREATE TABLE eav_attribute_group (
  attribute_group_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  attribute_set_id smallint(5) unsigned NOT NULL DEFAULT 0,
  attribute_group_name varchar(255) DEFAULT NULL,
  sort_order smallint(6) NOT NULL DEFAULT 0,
  default_id smallint(5) unsigned DEFAULT 0,
  attribute_group_code varchar(255) NOT NULL,
  tab_group_code varchar(255) DEFAULT NULL,
  PRIMARY KEY (attribute_group_id),
  UNIQUE KEY EAV_ATTRIBUTE_GROUP_ATTRIBUTE_SET_ID_ATTRIBUTE_GROUP_NAME (attribute_set_id, attribute_group_name),
  UNIQUE KEY EAV_ATTRIBUTE_GROUP_ATTRIBUTE_SET_ID_ATTRIBUTE_GROUP_CODE (attribute_set_id, attribute_group_code),
  KEY EAV_ATTRIBUTE_GROUP_ATTRIBUTE_SET_ID_SORT_ORDER (attribute_set_id, sort_order),
  CONSTRAINT EAV_ATTR_GROUP_ATTR_SET_ID_EAV_ATTR_SET_ATTR_SET_ID FOREIGN KEY (attribute_set_id) REFERENCES eav_attribute_set (attribute_set_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Attribute Group';

CREATE TABLE eav_entity_attribute (
  entity_attribute_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  entity_type_id smallint(5) unsigned NOT NULL DEFAULT 0,
  attribute_set_id smallint(5) unsigned NOT NULL DEFAULT 0,
  attribute_group_id smallint(5) unsigned NOT NULL DEFAULT 0,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  sort_order smallint(6) NOT NULL DEFAULT 0,
  PRIMARY KEY (entity_attribute_id),
  UNIQUE KEY EAV_ENTITY_ATTRIBUTE_ATTRIBUTE_SET_ID_ATTRIBUTE_ID (attribute_set_id, attribute_id),
  UNIQUE KEY EAV_ENTITY_ATTRIBUTE_ATTRIBUTE_GROUP_ID_ATTRIBUTE_ID (attribute_group_id, attribute_id),
  KEY EAV_ENTITY_ATTRIBUTE_ATTRIBUTE_SET_ID_SORT_ORDER (attribute_set_id, sort_order),
  KEY EAV_ENTITY_ATTRIBUTE_ATTRIBUTE_ID (attribute_id),
  CONSTRAINT EAV_ENTITY_ATTRIBUTE_ATTRIBUTE_ID_EAV_ATTRIBUTE_ATTRIBUTE_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT EAV_ENTT_ATTR_ATTR_GROUP_ID_EAV_ATTR_GROUP_ATTR_GROUP_ID FOREIGN KEY (attribute_group_id) REFERENCES eav_attribute_group (attribute_group_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Entity Attributes';

CREATE TABLE eav_attribute_option (
  option_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  sort_order smallint(5) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (option_id),
  KEY EAV_ATTRIBUTE_OPTION_ATTRIBUTE_ID (attribute_id),
  CONSTRAINT EAV_ATTRIBUTE_OPTION_ATTRIBUTE_ID_EAV_ATTRIBUTE_ATTRIBUTE_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Attribute Option';

CREATE TABLE eav_attribute_option_value (
  value_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  option_id int(10) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  value varchar(255) DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY EAV_ATTRIBUTE_OPTION_VALUE_STORE_ID_OPTION_ID (store_id, option_id),
  KEY EAV_ATTRIBUTE_OPTION_VALUE_OPTION_ID (option_id),
  KEY EAV_ATTRIBUTE_OPTION_VALUE_STORE_ID (store_id),
  CONSTRAINT EAV_ATTR_OPT_VAL_OPT_ID_EAV_ATTR_OPT_OPT_ID FOREIGN KEY (option_id) REFERENCES eav_attribute_option (option_id) ON DELETE CASCADE,
  CONSTRAINT EAV_ATTRIBUTE_OPTION_VALUE_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Attribute Option Value';

CREATE TABLE eav_attribute_label (
  attribute_label_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  value varchar(255) DEFAULT NULL,
  PRIMARY KEY (attribute_label_id),
  KEY EAV_ATTRIBUTE_LABEL_STORE_ID (store_id),
  KEY EAV_ATTRIBUTE_LABEL_ATTRIBUTE_ID_STORE_ID (attribute_id, store_id),
  CONSTRAINT EAV_ATTRIBUTE_LABEL_ATTRIBUTE_ID_EAV_ATTRIBUTE_ATTRIBUTE_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT EAV_ATTRIBUTE_LABEL_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Eav Attribute Label';

CREATE TABLE catalog_product_entity (
  entity_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  attribute_set_id smallint(5) unsigned NOT NULL DEFAULT 0,
  type_id varchar(32) NOT NULL DEFAULT 'simple',
  sku varchar(64) NOT NULL,
  has_options smallint(6) NOT NULL DEFAULT 0,
  required_options smallint(5) unsigned NOT NULL DEFAULT 0,
  created_at timestamp NOT NULL DEFAULT current_timestamp(),
  updated_at timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  PRIMARY KEY (entity_id),
  KEY CATALOG_PRODUCT_ENTITY_ATTRIBUTE_SET_ID (attribute_set_id),
  KEY CATALOG_PRODUCT_ENTITY_SKU (sku)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Table';

CREATE TABLE catalog_product_entity_datetime (
  value_id int(11) NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL DEFAULT 0,
  value datetime DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CATALOG_PRODUCT_ENTITY_DATETIME_ENTITY_ID_ATTRIBUTE_ID_STORE_ID (entity_id, attribute_id, store_id),
  KEY CATALOG_PRODUCT_ENTITY_DATETIME_ATTRIBUTE_ID (attribute_id),
  KEY CATALOG_PRODUCT_ENTITY_DATETIME_STORE_ID (store_id),
  CONSTRAINT CAT_PRD_ENTT_DTIME_ATTR_ID_EAV_ATTR_ATTR_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_ENTT_DTIME_ENTT_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (entity_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_PRODUCT_ENTITY_DATETIME_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Datetime Attribute Backend Table';

CREATE TABLE catalog_product_entity_decimal (
  value_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL DEFAULT 0,
  value decimal(20,6) DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CATALOG_PRODUCT_ENTITY_DECIMAL_ENTITY_ID_ATTRIBUTE_ID_STORE_ID (entity_id, attribute_id, store_id),
  KEY CATALOG_PRODUCT_ENTITY_DECIMAL_STORE_ID (store_id),
  KEY CATALOG_PRODUCT_ENTITY_DECIMAL_ATTRIBUTE_ID (attribute_id),
  CONSTRAINT CAT_PRD_ENTT_DEC_ATTR_ID_EAV_ATTR_ATTR_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_ENTT_DEC_ENTT_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (entity_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_PRODUCT_ENTITY_DECIMAL_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Decimal Attribute Backend Table';

CREATE TABLE catalog_product_entity_int (
  value_id int(11) NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL DEFAULT 0,
  value int(11) DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CATALOG_PRODUCT_ENTITY_INT_ENTITY_ID_ATTRIBUTE_ID_STORE_ID (entity_id, attribute_id, store_id),
  KEY CATALOG_PRODUCT_ENTITY_INT_ATTRIBUTE_ID (attribute_id),
  KEY CATALOG_PRODUCT_ENTITY_INT_STORE_ID (store_id),
  KEY CATALOG_PRODUCT_ENTITY_INT_ATTRIBUTE_ID_STORE_ID_VALUE (attribute_id, store_id, value),
  CONSTRAINT CAT_PRD_ENTT_INT_ATTR_ID_EAV_ATTR_ATTR_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_ENTT_INT_ENTT_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (entity_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_PRODUCT_ENTITY_INT_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Integer Attribute Backend Table';

CREATE TABLE catalog_product_entity_text (
  value_id int(11) NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL DEFAULT 0,
  value mediumtext DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CATALOG_PRODUCT_ENTITY_TEXT_ENTITY_ID_ATTRIBUTE_ID_STORE_ID (entity_id, attribute_id, store_id),
  KEY CATALOG_PRODUCT_ENTITY_TEXT_ATTRIBUTE_ID (attribute_id),
  KEY CATALOG_PRODUCT_ENTITY_TEXT_STORE_ID (store_id),
  CONSTRAINT CAT_PRD_ENTT_TEXT_ATTR_ID_EAV_ATTR_ATTR_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_ENTT_TEXT_ENTT_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (entity_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_PRODUCT_ENTITY_TEXT_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Text Attribute Backend Table';

CREATE TABLE catalog_product_entity_varchar (
  value_id int(11) NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL DEFAULT 0,
  value varchar(255) DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CATALOG_PRODUCT_ENTITY_VARCHAR_ENTITY_ID_ATTRIBUTE_ID_STORE_ID (entity_id, attribute_id, store_id),
  KEY CATALOG_PRODUCT_ENTITY_VARCHAR_ATTRIBUTE_ID (attribute_id),
  KEY CATALOG_PRODUCT_ENTITY_VARCHAR_STORE_ID (store_id),
  CONSTRAINT CAT_PRD_ENTT_VCHR_ATTR_ID_EAV_ATTR_ATTR_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_ENTT_VCHR_ENTT_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (entity_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_PRODUCT_ENTITY_VARCHAR_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Varchar Attribute Backend Table';

CREATE TABLE catalog_product_website (
  product_id int(10) unsigned NOT NULL,
  website_id smallint(5) unsigned NOT NULL,
  PRIMARY KEY (product_id, website_id),
  KEY CATALOG_PRODUCT_WEBSITE_WEBSITE_ID (website_id),
  CONSTRAINT CATALOG_PRODUCT_WEBSITE_WEBSITE_ID_STORE_WEBSITE_WEBSITE_ID FOREIGN KEY (website_id) REFERENCES store_website (website_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_WS_PRD_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (product_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product To Website Linkage Table';

CREATE TABLE catalog_product_super_attribute (
  product_super_attribute_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  product_id int(10) unsigned NOT NULL DEFAULT 0,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  position smallint(5) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (product_super_attribute_id),
  UNIQUE KEY CATALOG_PRODUCT_SUPER_ATTRIBUTE_PRODUCT_ID_ATTRIBUTE_ID (product_id, attribute_id),
  CONSTRAINT CAT_PRD_SPR_ATTR_PRD_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (product_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Super Attribute Table';

CREATE TABLE catalog_product_super_attribute_label (
  value_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  product_super_attribute_id int(10) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  use_default smallint(5) unsigned DEFAULT 0,
  value varchar(255) DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CAT_PRD_SPR_ATTR_LBL_PRD_SPR_ATTR_ID_STORE_ID (product_super_attribute_id, store_id),
  KEY CATALOG_PRODUCT_SUPER_ATTRIBUTE_LABEL_STORE_ID (store_id),
  CONSTRAINT FK_309442281DF7784210ED82B2CC51E5D5 FOREIGN KEY (product_super_attribute_id) REFERENCES catalog_product_super_attribute (product_super_attribute_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_PRODUCT_SUPER_ATTRIBUTE_LABEL_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Super Attribute Label Table';

CREATE TABLE catalog_product_super_link (
  link_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  product_id int(10) unsigned NOT NULL DEFAULT 0,
  parent_id int(10) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (link_id),
  UNIQUE KEY CATALOG_PRODUCT_SUPER_LINK_PRODUCT_ID_PARENT_ID (product_id, parent_id),
  KEY CATALOG_PRODUCT_SUPER_LINK_PARENT_ID (parent_id),
  CONSTRAINT CAT_PRD_SPR_LNK_PRD_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (product_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_SPR_LNK_PARENT_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (parent_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Super Link Table';

CREATE TABLE catalog_product_relation (
  parent_id int(10) unsigned NOT NULL,
  child_id int(10) unsigned NOT NULL,
  PRIMARY KEY (parent_id, child_id),
  KEY CATALOG_PRODUCT_RELATION_CHILD_ID (child_id),
  CONSTRAINT CAT_PRD_RELATION_CHILD_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (child_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CAT_PRD_RELATION_PARENT_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (parent_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product Relation Table';

CREATE TABLE catalog_category_entity (
  entity_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  attribute_set_id smallint(5) unsigned NOT NULL DEFAULT 0,
  parent_id int(10) unsigned NOT NULL DEFAULT 0,
  created_at timestamp NOT NULL DEFAULT current_timestamp(),
  updated_at timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  path varchar(255) NOT NULL,
  position int(11) NOT NULL,
  level int(11) NOT NULL DEFAULT 0,
  children_count int(11) NOT NULL,
  PRIMARY KEY (entity_id),
  KEY CATALOG_CATEGORY_ENTITY_LEVEL (level),
  KEY CATALOG_CATEGORY_ENTITY_PATH (path)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Category Table';

CREATE TABLE catalog_category_entity_int (
  value_id int(11) NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL DEFAULT 0,
  value int(11) DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CATALOG_CATEGORY_ENTITY_INT_ENTITY_ID_ATTRIBUTE_ID_STORE_ID (entity_id, attribute_id, store_id),
  KEY CATALOG_CATEGORY_ENTITY_INT_ENTITY_ID (entity_id),
  KEY CATALOG_CATEGORY_ENTITY_INT_ATTRIBUTE_ID (attribute_id),
  KEY CATALOG_CATEGORY_ENTITY_INT_STORE_ID (store_id),
  CONSTRAINT CAT_CTGR_ENTT_INT_ATTR_ID_EAV_ATTR_ATTR_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT CAT_CTGR_ENTT_INT_ENTT_ID_CAT_CTGR_ENTT_ENTT_ID FOREIGN KEY (entity_id) REFERENCES catalog_category_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_CATEGORY_ENTITY_INT_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Category Integer Attribute Backend Table';

CREATE TABLE catalog_category_entity_varchar (
  value_id int(11) NOT NULL AUTO_INCREMENT,
  attribute_id smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL DEFAULT 0,
  entity_id int(10) unsigned NOT NULL DEFAULT 0,
  value varchar(255) DEFAULT NULL,
  PRIMARY KEY (value_id),
  UNIQUE KEY CATALOG_CATEGORY_ENTITY_VARCHAR_ENTITY_ID_ATTRIBUTE_ID_STORE_ID (entity_id, attribute_id, store_id),
  KEY CATALOG_CATEGORY_ENTITY_VARCHAR_ENTITY_ID (entity_id),
  KEY CATALOG_CATEGORY_ENTITY_VARCHAR_ATTRIBUTE_ID (attribute_id),
  KEY CATALOG_CATEGORY_ENTITY_VARCHAR_STORE_ID (store_id),
  CONSTRAINT CAT_CTGR_ENTT_VCHR_ATTR_ID_EAV_ATTR_ATTR_ID FOREIGN KEY (attribute_id) REFERENCES eav_attribute (attribute_id) ON DELETE CASCADE,
  CONSTRAINT CAT_CTGR_ENTT_VCHR_ENTT_ID_CAT_CTGR_ENTT_ENTT_ID FOREIGN KEY (entity_id) REFERENCES catalog_category_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATALOG_CATEGORY_ENTITY_VARCHAR_STORE_ID_STORE_STORE_ID FOREIGN KEY (store_id) REFERENCES store (store_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Category Varchar Attribute Backend Table';

CREATE TABLE catalog_category_product (
  entity_id int(11) NOT NULL AUTO_INCREMENT,
  category_id int(10) unsigned NOT NULL DEFAULT 0,
  product_id int(10) unsigned NOT NULL DEFAULT 0,
  position int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (entity_id, category_id, product_id),
  UNIQUE KEY CATALOG_CATEGORY_PRODUCT_CATEGORY_ID_PRODUCT_ID (category_id, product_id),
  KEY CATALOG_CATEGORY_PRODUCT_PRODUCT_ID (product_id),
  CONSTRAINT CAT_CTGR_PRD_PRD_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (product_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CAT_CTGR_PRD_CTGR_ID_CAT_CTGR_ENTT_ENTT_ID FOREIGN KEY (category_id) REFERENCES catalog_category_entity (entity_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Catalog Product To Category Linkage Table';

CREATE TABLE customer_group (
  customer_group_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  customer_group_code varchar(32) NOT NULL,
  tax_class_id int(10) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (customer_group_id),
  KEY CUSTOMER_GROUP_CUSTOMER_GROUP_CODE (customer_group_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Customer Group';

CREATE TABLE cataloginventory_stock (
  stock_id smallint(5) unsigned NOT NULL AUTO_INCREMENT,
  website_id smallint(5) unsigned NOT NULL,
  stock_name varchar(255) DEFAULT NULL,
  PRIMARY KEY (stock_id),
  KEY CATALOGINVENTORY_STOCK_WEBSITE_ID (website_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Cataloginventory Stock';

CREATE TABLE cataloginventory_stock_item (
  item_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  product_id int(10) unsigned NOT NULL DEFAULT 0,
  stock_id smallint(5) unsigned NOT NULL DEFAULT 0,
  qty decimal(12,4) DEFAULT NULL,
  min_qty decimal(12,4) NOT NULL DEFAULT 0.0000,
  use_config_min_qty smallint(5) unsigned NOT NULL DEFAULT 1,
  is_qty_decimal smallint(5) unsigned NOT NULL DEFAULT 0,
  backorders smallint(5) unsigned NOT NULL DEFAULT 0,
  use_config_backorders smallint(5) unsigned NOT NULL DEFAULT 1,
  min_sale_qty decimal(12,4) NOT NULL DEFAULT 1.0000,
  use_config_min_sale_qty smallint(5) unsigned NOT NULL DEFAULT 1,
  max_sale_qty decimal(12,4) NOT NULL DEFAULT 0.0000,
  use_config_max_sale_qty smallint(5) unsigned NOT NULL DEFAULT 1,
  is_in_stock smallint(5) unsigned NOT NULL DEFAULT 0,
  low_stock_date timestamp NULL DEFAULT NULL,
  notify_stock_qty decimal(12,4) DEFAULT NULL,
  use_config_notify_stock_qty smallint(5) unsigned NOT NULL DEFAULT 1,
  manage_stock smallint(5) unsigned NOT NULL DEFAULT 0,
  use_config_manage_stock smallint(5) unsigned NOT NULL DEFAULT 1,
  stock_status_changed_auto smallint(5) unsigned NOT NULL DEFAULT 0,
  use_config_qty_increments smallint(5) unsigned NOT NULL DEFAULT 1,
  qty_increments decimal(12,4) NOT NULL DEFAULT 0.0000,
  use_config_enable_qty_inc smallint(5) unsigned NOT NULL DEFAULT 1,
  enable_qty_increments smallint(5) unsigned NOT NULL DEFAULT 0,
  is_decimal_divided smallint(5) unsigned NOT NULL DEFAULT 0,
  website_id smallint(5) unsigned NOT NULL DEFAULT 0,
  PRIMARY KEY (item_id),
  UNIQUE KEY CATALOGINVENTORY_STOCK_ITEM_PRODUCT_ID_STOCK_ID (product_id, stock_id),
  KEY CATALOGINVENTORY_STOCK_ITEM_WEBSITE_ID (website_id),
  KEY CATALOGINVENTORY_STOCK_ITEM_STOCK_ID (stock_id),
  CONSTRAINT CATINV_STOCK_ITEM_PRD_ID_CAT_PRD_ENTT_ENTT_ID FOREIGN KEY (product_id) REFERENCES catalog_product_entity (entity_id) ON DELETE CASCADE,
  CONSTRAINT CATINV_STOCK_ITEM_STOCK_ID_CATINV_STOCK_STOCK_ID FOREIGN KEY (stock_id) REFERENCES cataloginventory_stock (stock_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Cataloginventory Stock Item';

CREATE TABLE url_rewrite (
  url_rewrite_id int(10) unsigned NOT NULL AUTO_INCREMENT,
  entity_type varchar(32) NOT NULL,
  entity_id int(10) unsigned NOT NULL,
  request_path varchar(255) DEFAULT NULL,
  target_path varchar(255) DEFAULT NULL,
  redirect_type smallint(5) unsigned NOT NULL DEFAULT 0,
  store_id smallint(5) unsigned NOT NULL,
  description varchar(255) DEFAULT NULL,
  is_autogenerated smallint(5) unsigned NOT NULL DEFAULT 0,
  metadata varchar(255) DEFAULT NULL,
  PRIMARY KEY (url_rewrite_id),
  UNIQUE KEY URL_REWRITE_REQUEST_PATH_STORE_ID (request_path, store_id),
  KEY URL_REWRITE_TARGET_PATH (target_path),
  KEY URL_REWRITE_STORE_ID_ENTITY_ID (store_id, entity_id),
  KEY URL_REWRITE_ENTITY_ID (entity_id),
  KEY URL_REWRITE_IS_AUTOGENERATED_METADATA (is_autogenerated, metadata)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Url Rewrites';

-- Adobe Commerce (EE) CatalogPermissions product index, read by the
-- productOverrides feed (adobe-data-export.md §1.5). Columns, unique key and
-- indexes as in Magento_CatalogPermissions' InstallSchema; later versions
-- dropped its foreign keys, so it has none here. It has no PRIMARY KEY: rows
-- are identified by the UNIQUE key (product_id, store_id, customer_group_id).
-- Grants: -1 allow, -2 deny, 0 or NULL use the configuration default.
CREATE TABLE magento_catalogpermissions_index_product (
  product_id int(10) unsigned NOT NULL,
  store_id smallint(5) unsigned NOT NULL,
  customer_group_id int(10) unsigned NOT NULL,
  grant_catalog_category_view smallint(6) DEFAULT NULL,
  grant_catalog_product_price smallint(6) DEFAULT NULL,
  grant_checkout_items smallint(6) DEFAULT NULL,
  UNIQUE KEY MAGENTO_CATPERMISSIONS_IDX_PRD_PRD_ID_STORE_ID_CSTR_GROUP_ID (product_id, store_id, customer_group_id),
  KEY MAGENTO_CATALOGPERMISSIONS_INDEX_PRODUCT_STORE_ID (store_id),
  KEY MAGENTO_CATALOGPERMISSIONS_INDEX_PRODUCT_CUSTOMER_GROUP_ID (customer_group_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Enterprise Catalogpermissions Index Product';
