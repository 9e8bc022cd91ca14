ALTER TABLE `carts` ADD `holder` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `carts_holder_open` ON `carts` (`channel`,`holder`,`status`);