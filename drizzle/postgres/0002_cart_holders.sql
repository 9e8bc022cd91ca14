ALTER TABLE "carts" ADD COLUMN "holder" text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX "carts_holder_open" ON "carts" USING btree ("channel","holder","status");